"""Every URL that reaches a shard (a link, a seed, a redirect, a sitemap's page): the
crawl's scope, rules and depth, then its owner, this shard's frontier or another shard's
outbox, counted either way."""

from __future__ import annotations

from shardcrawl.core import urls
from shardcrawl.models import CrawlSpec, UrlTask
from shardcrawl.policy.frontier import Frontier
from shardcrawl.policy.host_slicer import HostSlicer
from shardcrawl.policy.host_table import HostTable
from shardcrawl.policy.origin_watch import OriginWatch
from shardcrawl.policy.shard_outbox import ShardOutbox
from shardcrawl.policy.shard_stats import ShardStats
from shardcrawl.policy.sitemap_queue import SitemapQueue
from shardcrawl.policy.url_rules import UrlRules

__all__ = ["UrlIntake"]


class UrlIntake:
    """Exists so the checks every incoming URL passes, and where it goes, are in one place."""

    def __init__(
        self,
        spec: CrawlSpec,
        *,
        shard: int,
        shard_count: int,
        domains: urls.DomainSet,
        stats: ShardStats,
        hosts: HostTable,
        frontier: Frontier,
        watch: OriginWatch,
        outbox: ShardOutbox,
        sitemaps: SitemapQueue,
        slicer: HostSlicer,
    ) -> None:
        self._spec = spec
        self._shard = shard
        self._shard_count = shard_count
        self._domains = domains
        self._rules = UrlRules(spec.include, spec.exclude)
        self._quota = spec.max_pages_per_host
        self._stats = stats
        self._hosts = hosts
        self._frontier = frontier
        self._watch = watch
        self._outbox = outbox
        self._sitemaps = sitemaps
        self._slicer = slicer

    def route(self, task: UrlTask, count: int = 1, *, is_link: bool = True) -> None:
        """Scope and depth checks, then to the owner: this shard, or another one (sent to it
        with the next links for other shards).
        ``count`` is how often a batch linked the URL; all but the first are duplicates."""
        if not urls.in_allowed_domains(task.url, self._domains):
            self._stats.totals.out_of_scope += count
            return
        rule = self._rules.rejects(task.url) if self._rules else None
        if rule is not None:
            filtered = self._stats.totals.filtered_by_rule
            filtered[rule] = filtered.get(rule, 0) + count
            return
        if task.depth > self._spec.max_depth:
            self._stats.totals.too_deep += count
            return
        for _ in range(count - 1):
            self._stats.record_link(task.url, duplicate=True)
        owner = urls.shard_of(urls.origin(task.url), self._shard_count)
        if owner == self._shard:
            self.accept(task, is_link=is_link)
        elif not self._outbox.add(owner, task):
            self._stats.record_link(task.url, duplicate=True)

    def add_seed(self, task: UrlTask) -> None:
        """A seed: a sitemap to read (unless sitemaps are off), else a page to fetch (unless
        the crawl reads sitemaps only: then the seed only names a host whose robots.txt may
        name sitemaps)."""
        if self._spec.sitemaps != "off" and urls.looks_like_sitemap(task.url):
            self._sitemaps.queue(task.url, nesting=0)
        elif self._spec.sitemaps == "only":
            self._watch.touch(urls.origin(task.url))
        else:
            self.accept(task, is_link=False)

    def accept(self, task: UrlTask, *, is_link: bool) -> None:
        """A URL this shard owns: into the frontier unless seen (a link is counted), or,
        if its host has reached its quota, counted and remembered as seen."""
        origin = urls.origin(task.url)
        if self._quota is not None and self._slicer.at_quota(self._hosts.of(origin).name):
            added = self._frontier.mark_seen(task)
            self._stats.totals.over_quota += added
        else:
            added = self._frontier.offer(task)
            if added:
                self._watch.touch(origin)
        if is_link:
            self._stats.record_link(task.url, duplicate=not added)
