"""Activity inputs and outputs: the fetch options, preparing a crawl, the previous crawl's
pages, robots.txt, sitemaps, batches and their outcomes, the WARC index, the report, and the
store's segments."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from shardcrawl.models.base import PageChange, _Model, wire_json
from shardcrawl.models.messages import ShardResult
from shardcrawl.models.spec import DEFAULT_USER_AGENT, BlockSpec, CrawlSpec, RetrySpec
from shardcrawl.models.stats import ProxyStats, WarcTotals
from shardcrawl.models.tasks import RequestData, UrlTask

__all__ = [
    "BatchRequest",
    "BatchResult",
    "BatchSlice",
    "CaptureOptions",
    "FetchOptions",
    "FetchOutcome",
    "Link",
    "PrepareRequest",
    "PrepareResult",
    "PreviousCrawlPage",
    "PreviousCrawlRequest",
    "ProxyLease",
    "ReportRequest",
    "RobotsRequest",
    "RobotsResult",
    "RobotsResults",
    "RobotsTarget",
    "SegmentData",
    "SegmentDelete",
    "SegmentRead",
    "SegmentWrite",
    "SitemapRequest",
    "SitemapResult",
    "SitemapResults",
    "SitemapTarget",
    "StoreProbe",
    "WarcIndexRequest",
]


class CaptureOptions(_Model):
    """What a batch keeps of its responses beyond the records: WARC files, bodies."""

    warc: bool = False
    warc_dedup: Literal["off", "digest"] = "off"
    store_bodies: bool = False
    warcinfo: dict[str, str] = Field(
        default_factory=dict, description="the crawl's fields for each WARC file's warcinfo"
    )

    @classmethod
    def from_spec(cls, spec: CrawlSpec) -> CaptureOptions:
        if not spec.warc:
            return cls(store_bodies=spec.store_bodies)
        seeds = spec.seeds[0] + (f" and {len(spec.seeds) - 1} more" if len(spec.seeds) > 1 else "")
        return cls(
            warc=True,
            warc_dedup=spec.warc_dedup,
            store_bodies=spec.store_bodies,
            warcinfo={
                "robots": "obey" if spec.obey_robots_txt else "ignore",
                "http-header-user-agent": spec.user_agent,
                "spider": spec.spider,
                "seeds": seeds,
                "scope": ", ".join(spec.effective_allowed_domains()[:20]),
                "limits": f"max_pages={spec.max_pages} max_depth={spec.max_depth} "
                f"max_response_bytes={spec.max_response_bytes}",
                "politeness": f"concurrency_per_host={spec.concurrency_per_host} "
                f"delay_seconds={spec.delay_seconds}",
                "previous-crawl": spec.previous_crawl or "",
            },
        )


class FetchOptions(_Model):
    """The spec's fetch settings that every activity needs, without the crawl-wide rest.

    Stored once per crawl (``prepare_crawl``, under ``layout.fetch_options_key``); activity
    inputs name them by ``digest()`` and workers cache them by it, so no batch carries them."""

    user_agent: str = DEFAULT_USER_AGENT
    max_response_bytes: int = 10 * 1024 * 1024
    download_timeout_seconds: float = 30.0
    allow_private_networks: bool = False
    retry: RetrySpec = Field(default_factory=RetrySpec)
    blocks: BlockSpec = Field(default_factory=BlockSpec)
    strip_query_params: tuple[str, ...] = ()
    capture: CaptureOptions = Field(default_factory=CaptureOptions)

    @classmethod
    def from_spec(cls, spec: CrawlSpec) -> FetchOptions:
        return cls(
            strip_query_params=tuple(spec.strip_query_params),
            user_agent=spec.user_agent,
            max_response_bytes=spec.max_response_bytes,
            download_timeout_seconds=spec.download_timeout_seconds,
            allow_private_networks=spec.allow_private_networks,
            retry=spec.retry,
            blocks=spec.blocks,
            capture=CaptureOptions.from_spec(spec),
        )

    def digest(self) -> str:
        """Names these options by their content: a changed spec gets another name, so a
        worker's cache is never stale, and equal options of many crawls share one entry."""
        return hashlib.blake2b(wire_json(self), digest_size=8).hexdigest()


class PrepareRequest(_Model):
    """Checks a worker can run the crawl at all before any shard starts, and finds the
    previous crawl's pages for an incremental one."""

    crawl_id: str
    spider: str
    output: str
    shard_count: int = 1
    fetch: FetchOptions | None = Field(
        default=None, description="stored once for the crawl's activities (fetch_digest)"
    )
    previous_crawl: str | None = None
    schedule: str | None = Field(default=None, description="the schedule that started it")
    incremental: bool = False


class PrepareResult(_Model):
    previous_crawl: str | None = None
    previous_crawl_files: list[int] = Field(
        default_factory=list, description="per shard: the previous crawl's item files it owns"
    )


class PreviousCrawlRequest(_Model):
    """A page of the previous crawl's URLs for one shard, from item file ``start`` on."""

    output: str
    crawl_id: str
    previous_crawl: str
    shard: int
    start: int


class PreviousCrawlPage(_Model):
    urls: list[UrlTask]
    next: int = Field(description="the item file to read next")


class ProxyLease(_Model):
    """Slots of one proxy's capacity that a batch holds: at most ``slots`` of its requests go
    through ``proxy`` at once."""

    proxy: str
    slots: int = Field(ge=1)


class RobotsTarget(_Model):
    """One origin whose robots.txt to fetch, and the proxy slot its pages' route gives it."""

    origin: str = Field(description="scheme://host[:port]")
    proxies: list[ProxyLease] = Field(default_factory=list, description="empty: direct")


class RobotsRequest(_Model):
    """The robots.txt of many origins, fetched in one Scrapy crawl (one request per host at a
    time), so a broad crawl pays one activity for many origins, not one each."""

    crawl_id: str
    origins: list[RobotsTarget] = Field(min_length=1)
    output: str
    fetch: FetchOptions = Field(
        default_factory=FetchOptions,
        description="inline only from a shard of an earlier version; else named by fetch_digest",
    )
    fetch_digest: str = Field(
        default="", description="FetchOptions.digest() of the crawl's stored fetch options"
    )


class RobotsResult(_Model):
    """Where the robots.txt was stored, or why every URL of the origin is refused or allowed."""

    key: str | None = None
    status: int | None = None
    error: str | None = None
    disallow_all: bool = False
    sitemaps: list[str] = Field(default_factory=list, description="its Sitemap: lines")


class RobotsResults(_Model):
    results: list[RobotsResult] = Field(description="one per target, in the request's order")


class SitemapTarget(_Model):
    """A sitemap to read: named by robots.txt or a seed (``nesting`` 0), or by an index."""

    url: str
    nesting: int = 0
    attempt: int = Field(default=1, ge=1)
    proxies: list[ProxyLease] = Field(default_factory=list)


class SitemapRequest(_Model):
    crawl_id: str
    output: str
    fetch: FetchOptions = Field(
        default_factory=FetchOptions,
        description="inline only from a shard of an earlier version; else named by fetch_digest",
    )
    fetch_digest: str = Field(
        default="", description="FetchOptions.digest() of the crawl's stored fetch options"
    )
    targets: list[SitemapTarget]


class SitemapResult(_Model):
    """What a sitemap gave: its entries are in the store (``segments``, records of
    ``[kind, url, lastmod, changefreq, priority]``, kind ``u`` a page, ``s`` a nested
    sitemap), never in the payload. ``error`` is a fetch failure class, or what was wrong
    with the document (``malformed``, ``not_a_sitemap``, ``wrong_namespace``, ``oversize``,
    ``http_404``, ...); entries read before a document broke off are kept."""

    status: int | None = None
    error: str | None = None
    pages: int = 0
    children: int = 0
    segments: list[str] = Field(default_factory=list)


class SitemapResults(_Model):
    results: list[SitemapResult] = Field(description="one per target, in the request's order")


class BatchSlice(_Model):
    """One host's part of a batch: the next ``count`` requests of the batch's ``urls``, all of
    ``origin``, with that host's allotment of its politeness budget (its own Scrapy download slot,
    at ``concurrency`` and ``delay_seconds``) and, if the host goes through proxies, the proxy
    slots it holds (then ``concurrency`` is their sum)."""

    origin: str
    count: int = Field(ge=1)
    concurrency: int = Field(ge=1)
    delay_seconds: float = Field(ge=0.0)
    robots_key: str | None = None
    robots_disallow_all: bool = False
    proxies: list[ProxyLease] = Field(default_factory=list, description="empty: direct")


class BatchRequest(_Model):
    """One batch: requests of one or many hosts, in slices, one slice per host (a host is in
    at most one batch in flight), so one Scrapy crawler serves many small hosts at once."""

    crawl_id: str
    shard: int
    batch_id: str
    urls: list[UrlTask]
    slices: list[BatchSlice] = Field(min_length=1)
    spider: str
    output: str
    fetch: FetchOptions = Field(
        default_factory=FetchOptions,
        description="inline only from a shard of an earlier version; else named by fetch_digest",
    )
    fetch_digest: str = Field(
        default="", description="FetchOptions.digest() of the crawl's stored fetch options"
    )
    previous_crawl: str | None = None

    @model_validator(mode="after")
    def _slices_cover_urls(self) -> BatchRequest:
        if sum(s.count for s in self.slices) != len(self.urls):
            raise ValueError(
                f"slices count {sum(s.count for s in self.slices)} requests, "
                f"the batch has {len(self.urls)}"
            )
        return self

    def sliced(self) -> Iterator[tuple[BatchSlice, range]]:
        """Each slice with the indexes of its requests in ``urls``."""
        start = 0
        for part in self.slices:
            yield part, range(start, start + part.count)
            start += part.count


class FetchOutcome(_Model):
    """What happened to one request of a batch. ``status`` is set when a response came back."""

    url: str
    task: int = Field(default=0, ge=0, description="the request's index in the batch")
    status: int | None = None
    error: str | None = Field(default=None, description="failure class when no usable response")
    redirect_to: str | None = None
    content_type: str | None = None
    attempt: int = 1
    blocked: str | None = Field(default=None, description="why the response is a block")
    retry_after_seconds: float | None = Field(
        default=None, description="the response's Retry-After, in seconds from when it came"
    )
    proxy: str | None = Field(default=None, description="the proxy the request went through")
    change: PageChange | None = Field(
        default=None, description="against the previous crawl, for an incremental one"
    )
    latency_ms: int | None = Field(default=None, description="request sent to response in")
    spider_error: str | None = Field(
        default=None, description="the exception type a callback raised on the page"
    )
    carried: bool = Field(
        default=False,
        description="not requested: its sitemap lastmod is not newer than the previous fetch",
    )


class Link(_Model):
    """A request a batch's spider yielded: its canonical URL, and the rest of it if not plain."""

    url: str
    depth: int
    count: int = Field(default=1, ge=1, description="times the batch's pages link it")
    priority: int = 0
    request: RequestData | None = None


class BatchResult(_Model):
    """Page metadata, links and failures of a batch; never bodies. A result too large for one
    payload leaves ``outcomes`` and ``links`` empty and names the store segments holding them."""

    batch_id: str
    outcomes: list[FetchOutcome]
    links: list[Link]
    items_written: int
    attempt: int = 1
    segments: list[str] = Field(default_factory=list)


class WarcIndexRequest(_Model):
    """Merge a crawl's per-batch CDXJ parts into ``OUT/ID/warc/index.cdxj``."""

    crawl_id: str
    output: str


class ReportRequest(_Model):
    """Everything the report needs; per-host stats are read from the shards' segments."""

    crawl_id: str
    status: Literal["completed", "cancelled", "failed"]
    output: str
    started_at: datetime
    finished_at: datetime
    shards: list[ShardResult]
    previous_crawl: str | None = None
    schedule: str | None = Field(
        default=None, description="the schedule whose last completed run this becomes"
    )
    warc: WarcTotals | None = Field(default=None, description="with warc: what the files hold")
    proxies: dict[str, ProxyStats] = Field(
        default_factory=dict, description="each proxy, fleet-wide, from the proxy broker"
    )


class SegmentWrite(_Model):
    """One claim-check segment to store (at most ``segments.SEGMENT_BYTES``)."""

    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    output: str
    key: str
    data: bytes


class SegmentRead(_Model):
    output: str
    key: str


class SegmentData(_Model):
    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    data: bytes


class SegmentDelete(_Model):
    output: str
    prefix: str


class StoreProbe(_Model):
    """Asks whether the crawl's store takes writes again, after an outage."""

    output: str
