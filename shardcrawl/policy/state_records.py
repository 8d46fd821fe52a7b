"""The shard's state as records of a few kinds, for a continue-as-new checkpoint's segments,
and back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shardcrawl.models import HostStats, RobotsResult
from shardcrawl.policy.frontier import Frontier
from shardcrawl.policy.host_pressure import HostPressure
from shardcrawl.policy.host_table import HostTable
from shardcrawl.policy.retry_queue import RetryQueue
from shardcrawl.policy.shard_stats import ShardStats
from shardcrawl.policy.sitemap_queue import SitemapQueue

__all__ = ["STATE_KINDS", "StateRecords"]

# The kinds of state a checkpoint stores, each as segments of records (``export``).
STATE_KINDS = ("frontier", "hosts", "retries", "pressure", "robots", "sitemaps")


class StateRecords:
    """Exists so each kind of state a checkpoint holds is written and read in one place."""

    def __init__(
        self,
        *,
        frontier: Frontier,
        hosts: HostTable,
        stats: ShardStats,
        retries: RetryQueue,
        pressure: HostPressure,
        sitemaps: SitemapQueue,
    ) -> None:
        self._frontier = frontier
        self._hosts = hosts
        self._stats = stats
        self._retries = retries
        self._pressure = pressure
        self._sitemaps = sitemaps

    def export(self, kind: str) -> Iterable[Any]:
        """One kind of state (``STATE_KINDS``) as records, for a checkpoint's segments."""
        if kind == "frontier":
            return self._frontier.export()
        if kind == "hosts":
            return ([n, s.model_dump(mode="json")] for n, s in self._stats.hosts.items())
        if kind == "retries":
            return self._retries.export()
        if kind == "pressure":
            return self._pressure.export()
        if kind == "robots":
            return (
                [o, r.model_dump(mode="json")]
                for h in self._hosts
                for o, r in h.robots.items()
                if r
            )
        if kind == "sitemaps":
            return self._sitemaps.export()
        raise ValueError(f"unknown kind of shard state {kind!r}")

    def restore(self, kind: str, records: Iterable[Any]) -> None:
        """Records of one kind of state, from a checkpoint's segments."""
        if kind == "frontier":
            self._frontier.restore_queued(records)
        elif kind == "hosts":
            self._stats.restore_hosts((n, HostStats.model_validate(s)) for n, s in records)
        elif kind == "retries":
            self._retries.restore(list(records))
        elif kind == "pressure":
            self._pressure.restore(list(records))
        elif kind == "robots":
            for origin, robots in records:
                self._hosts.of(origin).robots[origin] = RobotsResult.model_validate(robots)
        elif kind == "sitemaps":
            self._sitemaps.restore(records)
        else:
            raise ValueError(f"unknown kind of shard state {kind!r}")
