"""What a fetch_robots activity's results mean for the shard: each origin's robots.txt, a
proxy that failed to fetch it (asked again, through another), and the sitemaps it names."""

from __future__ import annotations

from shardcrawl.models import (
    ROBOTS_FETCH_FAILED,
    CrawlSpec,
    FetchOutcome,
    RobotsResult,
    RobotsTarget,
)
from shardcrawl.policy.host_table import HostTable
from shardcrawl.policy.origin_watch import OriginWatch
from shardcrawl.policy.proxy_health import PROXY_FAILURES
from shardcrawl.policy.proxy_router import ROBOTS, ProxyRouter
from shardcrawl.policy.sitemap_queue import SitemapQueue

__all__ = ["ROBOTS_PROXY_TRIES", "RobotsAbsorber"]

# Proxies a robots.txt fetch may fail through before the failure stands for the host.
ROBOTS_PROXY_TRIES = 3


class RobotsAbsorber:
    """Exists so robots.txt results, and their retries through proxies, are read in one place."""

    def __init__(
        self,
        spec: CrawlSpec,
        *,
        hosts: HostTable,
        watch: OriginWatch,
        proxies: ProxyRouter,
        sitemaps: SitemapQueue,
    ) -> None:
        self._spec = spec
        self._hosts = hosts
        self._watch = watch
        self._proxies = proxies
        self._sitemaps = sitemaps

    def landed(self, targets: list[RobotsTarget], results: list[RobotsResult] | None) -> None:
        """The activity's results (None: it failed, so every origin's robots.txt counts as
        not fetched)."""
        for target in targets:
            self._proxies.release(ROBOTS, self._hosts.of(target.origin).name)
        if results is None:
            results = [RobotsResult(error=ROBOTS_FETCH_FAILED) for _ in targets]
        for target, result in zip(targets, results, strict=True):
            origin = target.origin
            record = self._hosts.of(origin)
            self._watch.touch(origin)
            if target.proxies:
                # What the proxy did, for the broker's health of it.
                used = FetchOutcome(
                    url=origin,
                    status=result.status,
                    error=result.error,
                    proxy=target.proxies[0].proxy,
                )
                self._proxies.observe(record.name, [used])
            if target.proxies and result.error in PROXY_FAILURES:
                # The proxy failed, not the host: ask again, through another one.
                record.robots_tries[origin] = record.robots_tries.get(origin, 0) + 1
                if record.robots_tries[origin] < ROBOTS_PROXY_TRIES:
                    del record.robots[origin]
                    continue
            record.robots[origin] = result
            if self._spec.sitemaps != "off":
                for url in result.sitemaps:
                    self._sitemaps.queue(url, nesting=0)
