"""The levels a shard reports of itself: its totals, its busiest hosts, its metrics gauges."""

from __future__ import annotations

from collections.abc import Iterator

from shardcrawl.models import HostStats, ShardTotals
from shardcrawl.policy.activity_slots import ActivitySlots
from shardcrawl.policy.frontier import Frontier
from shardcrawl.policy.host_pressure import HostPressure
from shardcrawl.policy.retry_queue import RetryQueue
from shardcrawl.policy.shard_stats import ShardStats

__all__ = ["ShardGauges"]


class ShardGauges:
    """Exists so what the shard shows of itself is read apart from what it decides."""

    def __init__(
        self,
        *,
        stats: ShardStats,
        frontier: Frontier,
        retries: RetryQueue,
        pressure: HostPressure,
        slots: ActivitySlots,
    ) -> None:
        self._stats = stats
        self._frontier = frontier
        self._retries = retries
        self._pressure = pressure
        self._slots = slots

    def totals(self) -> ShardTotals:
        """The counters, with the engine's levels (the shell adds its own)."""
        totals = self._stats.totals.model_copy()
        totals.in_flight_batches = self._slots.in_flight
        totals.queued = self._frontier.queued()
        totals.seen = self._frontier.seen_count()
        totals.seen_set_bytes = self._frontier.seen_memory_bytes()
        totals.retry_waiting = len(self._retries)
        totals.parked_hosts = len(self._pressure.parked())
        totals.abandoned_hosts = len(self._pressure.abandoned())
        return totals

    def busiest_hosts(self, limit: int) -> dict[str, HostStats]:
        """The ``limit`` busiest hosts, and every parked or abandoned one."""
        busiest = sorted(self._stats.hosts.items(), key=lambda kv: (-kv[1].requests, kv[0]))
        return {
            name: stats
            for i, (name, stats) in enumerate(busiest)
            if i < limit or stats.state != "ok"
        }

    def levels(self) -> Iterator[tuple[str, int]]:
        """Gauges for the workers' metrics endpoint."""
        yield "queued", self._frontier.queued()
        yield "retry_waiting", len(self._retries)
        yield "batches_in_flight", self._slots.in_flight
        yield "parked_hosts", len(self._pressure.parked())
        yield "abandoned_hosts", len(self._pressure.abandoned())
