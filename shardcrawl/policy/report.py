"""The crawl report: shard results folded into one set of crawl-wide and per-host numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shardcrawl.models import CrawlReport, HostStats, ProxyStats, ShardTotals
from shardcrawl.models.timeseries import TimeSeries, merge_series

__all__ = [
    "MAX_FIELDS",
    "REPORT_HOSTS_INLINE",
    "ShardPart",
    "build_report",
    "merge_host_stats",
    "merge_hosts",
    "sum_totals",
    "top_urls_retry_share",
    "trim_hosts",
]

MAX_FIELDS = frozenset({"history_length", "largest_payload_bytes"})
"""Totals that are a run's own size, so the crawl's is the largest shard's, not a sum."""

_STORE_FIELDS = frozenset({"store_down_since", "store_down_cause"})
"""Whether the store is down: the crawl's is its shards' earliest outage, not a sum."""

REPORT_HOSTS_INLINE = 100
"""Hosts kept in the report that travels through history; report.json has every host."""


@dataclass(frozen=True)
class ShardPart:
    """One shard's share of the report, with its per-host stats read back from the store."""

    totals: ShardTotals
    hosts: dict[str, HostStats]
    unfetched: int = 0
    series: TimeSeries = field(default_factory=TimeSeries)


def sum_totals(parts: list[ShardTotals]) -> ShardTotals:
    total = ShardTotals()
    down = [p for p in parts if p.store_down_since]
    if down:
        first = min(down, key=lambda p: p.store_down_since)
        total.store_down_since, total.store_down_cause = (
            first.store_down_since,
            first.store_down_cause,
        )
    for part in parts:
        for name in ShardTotals.model_fields:
            if name in _STORE_FIELDS:
                continue
            mine, theirs = getattr(total, name), getattr(part, name)
            if isinstance(mine, dict):
                _merge_counts(mine, theirs)
            else:
                setattr(total, name, max(mine, theirs) if name in MAX_FIELDS else mine + theirs)
    return total


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _merge_counts(into: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value


# A host's state, as its owner sees it: not counters, and only the owner's counts.
_HOST_STATE_FIELDS = frozenset(
    {"state", "concurrency", "delay_seconds", "slowdowns", "recoveries", "parks", "at_quota"}
)


def merge_host_stats(a: HostStats, b: HostStats) -> HostStats:
    """One host's stats from two shards. Every shard counts the links it found to a host,
    but only the host's owner sends it requests and so knows its state (parked, abandoned,
    its concurrency): a shard that only linked to it holds a default state that must not
    overwrite the owner's. (Two owners only if the shard count changed: the later wins.)"""
    merged = a.model_copy(deep=True)
    owner_b = b.requests > 0 or a.requests == 0
    for name, value in b:
        if isinstance(value, dict):
            _merge_counts(getattr(merged, name), value)
        elif name in _HOST_STATE_FIELDS:
            if owner_b:
                setattr(merged, name, value)
        else:
            setattr(merged, name, getattr(merged, name) + value)
    return merged


def merge_hosts(parts: Iterable[dict[str, HostStats]]) -> dict[str, HostStats]:
    """Every host of several shards' stats, each merged by ``merge_host_stats``: the one
    fold the report and the live status share, so neither lets a later shard's default
    state win over the owner's."""
    hosts: dict[str, HostStats] = {}
    for part in parts:
        for name, stats in part.items():
            hosts[name] = merge_host_stats(hosts[name], stats) if name in hosts else stats
    return hosts


def top_urls_retry_share(histogram: dict[str, int], urls_ended: int, share: float = 0.01) -> float:
    """Of all URL retries, the share that fell on the most-retried ``share`` of the URLs.

    ``histogram`` maps a retry count to how many URLs ended with that many retries; URLs
    with none are not in it but count in ``urls_ended``.
    """
    total = sum(int(k) * v for k, v in histogram.items())
    if total == 0:
        return 0.0
    left = max(1, math.ceil(urls_ended * share))
    top = 0
    for retries, count in sorted(((int(k), v) for k, v in histogram.items()), reverse=True):
        take = min(left, count)
        top += retries * take
        left -= take
        if left == 0:
            break
    return _ratio(top, total)


def build_report(
    *,
    crawl_id: str,
    status: Literal["completed", "cancelled", "failed"],
    output: str,
    started_at: datetime,
    finished_at: datetime,
    results: list[ShardPart],
    previous_crawl: str | None = None,
    proxies: dict[str, ProxyStats] | None = None,
) -> CrawlReport:
    totals = sum_totals([r.totals for r in results])
    hosts = merge_hosts(r.hosts for r in results)
    failure_classes: dict[str, int] = {}
    status_counts: dict[str, int] = {}
    for result in results:
        for stats in result.hosts.values():
            _merge_counts(failure_classes, stats.failure_classes)
            _merge_counts(status_counts, stats.status_counts)
    elapsed = max((finished_at - started_at).total_seconds(), 1e-9)
    retries_by_host = [h.retries for h in hosts.values()]
    return CrawlReport(
        crawl_id=crawl_id,
        status=status,
        output=output,
        started_at=started_at,
        finished_at=finished_at,
        elapsed_seconds=round(elapsed, 3),
        pages_fetched=totals.pages,
        requests=totals.requests,
        failures=totals.failures,
        failure_classes=dict(sorted(failure_classes.items())),
        status_counts=dict(sorted(status_counts.items())),
        duplicates_skipped=totals.duplicates,
        links_discovered=totals.links_discovered,
        duplicate_rate=_ratio(totals.duplicates, totals.links_discovered),
        blocked=totals.blocked,
        block_rate=_ratio(totals.blocked, totals.requests),
        retries=totals.retries,
        retry_rate=_ratio(totals.retries, totals.requests),
        throttled=totals.throttled,
        gave_up=totals.gave_up,
        batch_retries=totals.batch_retries,
        retry_concentration=_ratio(max(retries_by_host, default=0), sum(retries_by_host)),
        retry_concentration_top_urls=top_urls_retry_share(
            totals.retry_histogram, totals.pages + totals.failures
        ),
        parked_hosts=sorted(n for n, h in hosts.items() if h.state in ("parked", "probing")),
        abandoned_hosts=sorted(n for n, h in hosts.items() if h.state == "abandoned"),
        robots_disallowed=totals.robots_disallowed,
        out_of_scope=totals.out_of_scope,
        filtered_by_rule=dict(sorted(totals.filtered_by_rule.items())),
        over_quota=totals.over_quota,
        quota_hosts=sorted(n for n, h in hosts.items() if h.at_quota),
        sitemaps_fetched=totals.sitemaps_fetched,
        sitemap_urls=totals.sitemap_urls,
        sitemap_errors=dict(sorted(totals.sitemap_errors.items())),
        spider_errors=dict(sorted(totals.spider_errors.items())),
        too_deep=totals.too_deep,
        unfetched=sum(r.unfetched for r in results),
        pages_per_second=round(totals.pages / elapsed, 3),
        hosts=dict(sorted(hosts.items())),
        proxies=dict(sorted((proxies or {}).items())),
        previous_crawl=previous_crawl,
        pages_new=totals.pages_new,
        pages_changed=totals.pages_changed,
        pages_unchanged=totals.pages_unchanged,
        pages_gone=totals.pages_gone,
        pages_carried=totals.pages_carried,
        timeseries=merge_series([r.series for r in results]),
    )


def trim_hosts(report: CrawlReport, keep: int = REPORT_HOSTS_INLINE) -> CrawlReport:
    """The report with only its ``keep`` busiest hosts, small enough for a workflow result."""
    if len(report.hosts) <= keep:
        return report
    busiest = sorted(report.hosts.items(), key=lambda kv: (-kv[1].requests, kv[0]))[:keep]
    return report.model_copy(
        update={"hosts": dict(sorted(busiest)), "hosts_omitted": len(report.hosts) - keep}
    )
