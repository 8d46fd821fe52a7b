"""The sitemaps a shard is to read: when each may be fetched, that each is read once, the
pages they list, and (in an incremental crawl) which hosts' pages wait for their sitemaps."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from shardcrawl.core import urls
from shardcrawl.models import (
    SITEMAP_META,
    RequestData,
    RetrySpec,
    SitemapResult,
    SitemapTarget,
    UrlTask,
)
from shardcrawl.policy.frontier import Frontier
from shardcrawl.policy.host_table import HostTable
from shardcrawl.policy.origin_watch import OriginWatch
from shardcrawl.policy.proxy_router import SITEMAP, ProxyRouter
from shardcrawl.policy.retry_policy import RETRYABLE_ERRORS, backoff_seconds
from shardcrawl.policy.shard_stats import ShardStats

__all__ = ["MAX_SITEMAP_NESTING", "SitemapQueue"]

# How deep sitemap indexes may nest.
MAX_SITEMAP_NESTING = 4

Entry = tuple[float, int, SitemapTarget]  # (not before, arrival, target)


class SitemapQueue:
    """Exists so sitemap reading (queue, retries, loops, checkpoints) is apart from pages."""

    def __init__(
        self,
        *,
        domains: urls.DomainSet,
        stats: ShardStats,
        hosts: HostTable,
        frontier: Frontier,
        watch: OriginWatch,
        proxies: ProxyRouter,
        retry: RetrySpec,
        random: Callable[[], float],
        incremental: bool,
        route: Callable[[UrlTask], None],
    ) -> None:
        """``incremental``: a host's pages wait until its sitemaps are read. ``route``: where
        the pages a sitemap lists go (where links go)."""
        self._domains = domains
        self._stats = stats
        self._hosts = hosts
        self._frontier = frontier
        self._watch = watch
        self._proxies = proxies
        self._retry = retry
        self._random = random
        self._incremental = incremental
        self._route = route
        # Sitemaps to read: (not before, arrival, target); and every one ever queued, so that
        # an index that names itself, or one named twice, is read once.
        self._sitemaps: list[Entry] = []
        self._sitemaps_seen: set[str] = set()
        self._sitemap_seq = 0

    def __bool__(self) -> bool:
        return bool(self._sitemaps)

    def next_time(self) -> float | None:
        """When the first sitemap in the queue may be fetched; None if none is queued."""
        return self._sitemaps[0][0] if self._sitemaps else None

    def due(self, now: float) -> bool:
        """Whether the first sitemap in the queue may be fetched now."""
        return bool(self._sitemaps) and self._sitemaps[0][0] <= now

    def pop(self) -> Entry:
        """The first sitemap in the queue, taken out of it (``put_back`` returns it)."""
        return heapq.heappop(self._sitemaps)

    def put_back(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            heapq.heappush(self._sitemaps, entry)

    def queue(self, url: str, *, nesting: int, attempt: int = 1, at: float = 0.0) -> None:
        """A sitemap to read: in scope, not too deeply nested, and once per crawl (a repeat
        is an index loop, or one sitemap named twice)."""
        totals = self._stats.totals
        if not urls.in_allowed_domains(url, self._domains):
            totals.out_of_scope += 1
            return
        if attempt == 1:
            if nesting > MAX_SITEMAP_NESTING:
                self.error("too_deeply_nested")
                return
            if url in self._sitemaps_seen:
                if nesting > 0:
                    self.error("loop")
                return
            self._sitemaps_seen.add(url)
        self._sitemap_seq += 1
        target = SitemapTarget(url=url, nesting=nesting, attempt=attempt)
        heapq.heappush(self._sitemaps, (at, self._sitemap_seq, target))
        if self._incremental and attempt == 1:
            self._hosts[urls.hostname(url)].sitemaps_unread += 1

    def entries(self, target: SitemapTarget, records: list[list[Any]]) -> None:
        """A page of a sitemap's entries (one store segment, read by the shell): pages go
        where links go, as depth-0 requests carrying their sitemap fields; nested sitemaps
        are read next. Fed a segment at a time, so no workflow task routes a whole 50,000-URL
        sitemap at once."""
        for kind, url, lastmod, changefreq, priority in records:
            if kind == "s":
                self.queue(url, nesting=target.nesting + 1)
                continue
            self._stats.totals.sitemap_urls += 1
            task = _sitemap_task(url, lastmod, changefreq, priority)
            if task.request is not None and self._frontier.update_queued(task):
                continue  # queued already (the previous crawl's URL): now with its fields
            self._route(task)

    def landed(
        self, targets: list[SitemapTarget], results: list[SitemapResult], now: float
    ) -> None:
        """A fetch_sitemaps activity's results, once their entries are in: what was fetched,
        what went wrong (by class), and a failure that may pass retried as a page's would be."""
        retry = self._retry
        for target, result in zip(targets, results, strict=True):
            if target.proxies:
                self._proxies.release(SITEMAP, urls.hostname(target.url))
            passing = (result.status is None and result.error in RETRYABLE_ERRORS) or (
                result.status is not None and result.status >= 500
            )
            if passing and target.attempt < retry.max_attempts:
                wait = backoff_seconds(target.attempt, retry, self._random())
                self.queue(
                    target.url, nesting=target.nesting, attempt=target.attempt + 1, at=now + wait
                )
                continue
            if result.status is not None and 200 <= result.status < 300:
                self._stats.totals.sitemaps_fetched += 1
            if result.error:
                self.error(result.error)
            if self._incremental:
                self._read(target.url)

    def _read(self, url: str) -> None:
        """One of a host's sitemaps is read (or given up on): once all are, its origins that
        waited for them are looked at again."""
        host = self._hosts[urls.hostname(url)]
        host.sitemaps_unread = max(0, host.sitemaps_unread - 1)
        if host.sitemaps_unread:
            return
        self._watch.touch_all(host.sitemap_waiters)
        host.sitemap_waiters.clear()

    def error(self, kind: str) -> None:
        errors = self._stats.totals.sitemap_errors
        errors[kind] = errors.get(kind, 0) + 1

    def export(self) -> Iterator[Any]:
        """The queue (``q``) and the sitemaps already read (``s``), for a checkpoint."""
        queued = {entry[2].url for entry in self._sitemaps}
        waiting = (["q", at, t.model_dump(mode="json")] for at, _, t in sorted(self._sitemaps))
        done = (["s", url] for url in sorted(self._sitemaps_seen - queued))
        return itertools.chain(waiting, done)

    def restore(self, records: Iterable[Any]) -> None:
        for record in records:
            if record[0] == "q":
                target = SitemapTarget.model_validate(record[2])
                self._sitemaps_seen.add(target.url)
                self._sitemap_seq += 1
                heapq.heappush(self._sitemaps, (record[1], self._sitemap_seq, target))
                if self._incremental:
                    self._hosts[urls.hostname(target.url)].sitemaps_unread += 1
            else:
                self._sitemaps_seen.add(record[1])


def _sitemap_task(
    url: str, lastmod: str | None, changefreq: str | None, priority: float | None
) -> UrlTask:
    """A page a sitemap lists: a seed-like request (depth 0) whose record keeps the sitemap's
    fields, and whose priority (0.0 to 1.0, default 0.5) orders the frontier in tenths."""
    fields = {
        k: v
        for k, v in (("lastmod", lastmod), ("changefreq", changefreq), ("priority", priority))
        if v is not None
    }
    request = RequestData(meta={SITEMAP_META: fields}) if fields else None
    rank = round((0.5 if priority is None else priority) * 10) - 5
    return UrlTask(url=url, depth=0, priority=rank, request=request)
