"""The shard's health as Prometheus counters and gauges on the workers' metrics endpoint."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import MetricCounter, MetricGauge

from shardcrawl.policy.shard_engine import ShardEngine

__all__ = ["ShardMetrics"]


class ShardMetrics:
    def __init__(self, engine: ShardEngine) -> None:
        self._engine = engine
        # Counter values already exported (by this run, or the runs before it).
        self.exported: dict[str, int] = {}
        # Metric instruments, made once per run on first use.
        self._meter: tuple[dict[str, MetricCounter], dict[str, MetricGauge]] | None = None

    def export(self, crawl_id: str, shard: int) -> None:
        totals = self._engine.stats.totals
        counted = {"links": totals.links_discovered, "duplicates": totals.duplicates}
        levels = dict(self._engine.levels())
        if self._meter is None:
            meter = workflow.metric_meter().with_additional_attributes(
                {"crawl_id": crawl_id, "shard": str(shard)}
            )
            self._meter = (
                {n: meter.create_counter(f"shardcrawl_shard_{n}") for n in counted},
                {n: meter.create_gauge(f"shardcrawl_shard_{n}") for n in levels},
            )
        counters, gauges = self._meter
        for name, value in counted.items():
            if value > self.exported.get(name, 0):
                counters[name].add(value - self.exported.get(name, 0))
                self.exported[name] = value
        for name, value in levels.items():
            gauges[name].set(value)
