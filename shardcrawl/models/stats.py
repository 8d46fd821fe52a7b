"""Counters, live status and the final report: per host, per shard, per proxy, per fleet,
and the crawl's ``CrawlProgress`` and ``CrawlReport``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from shardcrawl.models.base import _Model
from shardcrawl.models.timeseries import TimeSeries

__all__ = [
    "CrawlProgress",
    "CrawlReport",
    "FleetStatus",
    "HostStats",
    "ProxyStats",
    "ShardTotals",
    "WarcTotals",
]


class HostStats(_Model):
    """One host's counters. ``requests``, ``blocked`` and ``throttled`` count every attempt;
    ``pages``, ``failures`` and the class and status counts count each URL once, at its end."""

    requests: int = 0
    pages: int = 0
    failures: int = 0
    blocked: int = 0
    throttled: int = Field(default=0, description="429 responses")
    retries: int = Field(default=0, description="attempts scheduled after a retryable outcome")
    gave_up: int = Field(default=0, description="URLs whose last attempt was still retryable")
    failure_classes: dict[str, int] = Field(default_factory=dict)
    status_counts: dict[str, int] = Field(default_factory=dict)
    block_reasons: dict[str, int] = Field(default_factory=dict)
    links_discovered: int = 0
    duplicates: int = 0
    robots_disallowed: int = 0
    batch_retries: int = 0
    first_requests: int = Field(
        default=0, description="URLs sent for their first time (what max_pages_per_host caps)"
    )
    at_quota: bool = Field(default=False, description="reached max_pages_per_host")
    state: Literal["ok", "parked", "probing", "abandoned"] = "ok"
    concurrency: int = Field(default=0, description="concurrency allowed now (adaptive)")
    delay_seconds: float = Field(default=0.0, description="delay between requests now (adaptive)")
    slowdowns: int = 0
    recoveries: int = 0
    parks: int = 0
    proxies: dict[str, int] = Field(
        default_factory=dict, description="requests through each proxy (its spec URL)"
    )


class ShardTotals(_Model):
    """A shard's running counters: small, so they ride on every report."""

    requests: int = 0
    pages: int = 0
    failures: int = 0
    blocked: int = 0
    links_discovered: int = 0
    duplicates: int = 0
    out_of_scope: int = 0
    filtered_by_rule: dict[str, int] = Field(
        default_factory=dict, description="URL rule (include, exclude[N]) -> URLs it filtered"
    )
    over_quota: int = Field(default=0, description="URLs not fetched: their host hit its quota")
    sitemaps_fetched: int = 0
    sitemap_urls: int = Field(default=0, description="page entries the sitemaps listed")
    sitemap_errors: dict[str, int] = Field(
        default_factory=dict, description="what went wrong with sitemaps, by class"
    )
    spider_errors: dict[str, int] = Field(
        default_factory=dict, description="pages whose callback raised, by exception type"
    )
    too_deep: int = 0
    robots_disallowed: int = 0
    redirects_exceeded: int = 0
    batches: int = 0
    batch_retries: int = 0
    in_flight_batches: int = 0
    queued: int = 0
    hosts: int = 0
    seen: int = 0
    throttled: int = 0
    retries: int = 0
    gave_up: int = 0
    retry_waiting: int = Field(default=0, description="URLs waiting for their next attempt")
    parked_hosts: int = 0
    abandoned_hosts: int = 0
    retry_histogram: dict[str, int] = Field(
        default_factory=dict, description="retries of a URL -> URLs with that many, at their end"
    )
    pages_new: int = Field(default=0, description="incremental: not in the previous crawl")
    pages_changed: int = 0
    pages_unchanged: int = Field(default=0, description="304, or the same content again")
    pages_gone: int = Field(default=0, description="404 or 410 now, fetched before")
    pages_carried: int = Field(
        default=0, description="incremental: not asked, as their sitemap lastmod is not newer"
    )
    # Not sums: the crawl shows the largest of its shards' (see report.MAX_FIELDS).
    history_length: int = Field(default=0, description="events in the current run's history")
    largest_payload_bytes: int = 0
    continued_as_new: int = Field(default=0, description="runs before the current one")
    seen_set_bytes: int = Field(default=0, description="memory held by the seen-set")
    # Not sums either: the crawl's is its shards' earliest (see report.sum_totals).
    store_down_since: float = Field(
        default=0.0, description="workflow time the store went down, while the shard waits"
    )
    store_down_cause: str = Field(default="", description="the store's last error, meanwhile")
    recent_pages: dict[str, int] = Field(
        default_factory=dict,
        description="pages ended per 10 s slot (epoch seconds // 10), the last minute only",
    )


class ProxyStats(_Model):
    """One proxy's health as a shard (or, summed, the crawl) saw it."""

    pool: str = ""
    tags: list[str] = Field(default_factory=list)
    requests: int = 0
    responses: int = 0
    failures: int = Field(default=0, description="connection failures, timeouts, auth refusals")
    blocks: int = Field(default=0, description="responses a host sent as a block")
    bans: int = Field(default=0, description="times a host's blocks rested the proxy for it")
    cooldowns: int = Field(default=0, description="times failures rested the proxy")
    latency_ms_total: int = Field(default=0, description="summed over responses")
    mean_latency_ms: float = 0.0
    state: Literal["ok", "cooling"] = "ok"
    cooling_until: float = Field(default=0.0, description="workflow time, while cooling")
    banned_on: list[str] = Field(default_factory=list, description="hosts it rests for now")
    in_use: int = Field(default=0, description="slots leased now, fleet-wide")
    capacity: int = Field(default=0, description="most concurrent requests, fleet-wide")

    @model_validator(mode="after")
    def _mean_latency(self) -> ProxyStats:
        """Derived from the totals, so that a sum of shards' stats has it right too."""
        self.mean_latency_ms = round(self.latency_ms_total / max(1, self.responses), 1)
        return self


class FleetStatus(_Model):
    """A fleet's work and workers, as live status sees them (the shards' in-flight counts and
    Temporal's view of the fleet's task queue)."""

    task_queue: str
    in_flight: int = Field(default=0, description="its activities scheduled or running")
    workers: int = Field(default=0, description="workers that polled its queue lately")
    backlog: int = Field(default=0, description="activities no worker has taken yet (approx.)")
    backlog_age_seconds: float = Field(default=0.0, description="the oldest one's wait")
    waiting: bool = Field(
        default=False, description="work for the fleet and no worker: the crawl waits for one"
    )


class CrawlProgress(_Model):
    """The live state of a crawl, as the ``progress`` query returns it."""

    crawl_id: str
    state: Literal["starting", "running", "paused", "finishing", "completed", "cancelled", "failed"]
    started_at: datetime | None = None
    elapsed_seconds: float = 0.0
    pages_per_second: float = 0.0
    max_pages: int = 0
    shard_count: int = 0
    credits_left: int = 0
    totals: ShardTotals = Field(default_factory=ShardTotals)
    shards: list[ShardTotals] = Field(default_factory=list)
    hosts: dict[str, HostStats] = Field(
        default_factory=dict, description="the busiest hosts and every parked one (live)"
    )
    history_length: int = Field(default=0, description="events in the crawl workflow's run")
    continued_as_new: int = Field(default=0, description="the crawl workflow's earlier runs")
    largest_payload_bytes: int = Field(default=0, description="crawl workflow's largest payload")
    proxies: dict[str, ProxyStats] = Field(default_factory=dict)
    fleets: dict[str, FleetStatus] = Field(
        default_factory=dict, description="each fleet the routes name (fetch_queue), live"
    )
    failure: str | None = Field(default=None, description="why a failed crawl failed")


class WarcTotals(_Model):
    """What a crawl's WARC files hold, summed over its batches' last attempts."""

    files: int = 0
    records: int = 0
    bytes: int = Field(default=0, description="gzipped, as stored")
    index_lines: int = 0


class CrawlReport(_Model):
    """The final health of a crawl, written to ``OUT/ID/report.json``."""

    crawl_id: str
    status: Literal["completed", "cancelled", "failed"]
    output: str
    started_at: datetime
    finished_at: datetime
    elapsed_seconds: float
    pages_fetched: int
    requests: int
    failures: int
    failure_classes: dict[str, int]
    status_counts: dict[str, int]
    duplicates_skipped: int
    links_discovered: int
    duplicate_rate: float
    blocked: int
    block_rate: float
    retries: int = Field(description="URL attempts after the first (not batch retries)")
    retry_rate: float = Field(default=0.0, description="retries / requests")
    throttled: int = Field(default=0, description="429 responses")
    gave_up: int = Field(default=0, description="URLs whose last attempt was still retryable")
    batch_retries: int
    retry_concentration: float = Field(description="share of URL retries on the top host")
    retry_concentration_top_urls: float = Field(
        default=0.0, description="share of URL retries on the most-retried 1% of URLs"
    )
    parked_hosts: list[str] = Field(default_factory=list)
    abandoned_hosts: list[str] = Field(
        default_factory=list, description="hosts given up on after parks in a row"
    )
    robots_disallowed: int
    out_of_scope: int
    filtered_by_rule: dict[str, int] = Field(
        default_factory=dict, description="URL rule (include, exclude[N]) -> URLs it filtered"
    )
    over_quota: int = Field(default=0, description="URLs not fetched: their host hit its quota")
    quota_hosts: list[str] = Field(
        default_factory=list, description="hosts that reached max_pages_per_host"
    )
    sitemaps_fetched: int = 0
    sitemap_urls: int = Field(default=0, description="page entries the sitemaps listed")
    sitemap_errors: dict[str, int] = Field(
        default_factory=dict, description="what went wrong with sitemaps, by class"
    )
    spider_errors: dict[str, int] = Field(
        default_factory=dict, description="pages whose callback raised, by exception type"
    )
    too_deep: int
    unfetched: int
    pages_per_second: float
    hosts: dict[str, HostStats]
    hosts_omitted: int = Field(
        default=0, description="hosts left out here for size; report.json lists every host"
    )
    proxies: dict[str, ProxyStats] = Field(default_factory=dict)
    previous_crawl: str | None = Field(default=None, description="incremental: compared with")
    pages_new: int = 0
    pages_changed: int = 0
    pages_unchanged: int = Field(default=0, description="304s, and pages fetched the same again")
    pages_gone: int = Field(default=0, description="404 or 410 now, fetched before")
    pages_carried: int = Field(
        default=0, description="incremental: not asked, as their sitemap lastmod is not newer"
    )
    warc_files: int = Field(default=0, description="with warc: WARC files written")
    warc_records: int = Field(default=0, description="with warc: records in them")
    warc_bytes: int = Field(default=0, description="with warc: their size, gzipped")
    timeseries: TimeSeries = Field(
        default_factory=TimeSeries, description="the shards' time series, merged (bounded)"
    )
