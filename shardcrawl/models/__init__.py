"""Every workflow and activity input and output, in one place.

These models are the wire format between the CLI, the workflows and the activities (through
temporalio's pydantic data converter), so fields are only ever added with defaults. Field names
carry their units. Workflow code imports this module through ``imports_passed_through``: it must
stay free of I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaSerializer, core_schema

from shardcrawl.core import urls
from shardcrawl.core.fleet_names import DEFAULT_FLEET, check_fleet_name
from shardcrawl.core.proxy_urls import check_proxy_url
from shardcrawl.models.timeseries import TimeSeries

__all__ = [
    "BATCH_FAILED",
    "CRAWL_ID",
    "REQUEST_NOT_TRANSFERABLE",
    "SPIDER_START_FAILED",
    "SITEMAP_META",
    "STORE_FAILED",
    "STORE_UNAVAILABLE",
    "DEFERRED",
    "HOST_ABANDONED",
    "FORBIDDEN_ADDRESS",
    "NOT_FETCHED",
    "ROBOTS_DISALLOWED",
    "ROBOTS_FETCH_FAILED",
    "BatchRequest",
    "BatchSlice",
    "BatchResult",
    "CaptureOptions",
    "CrawlCheckpoint",
    "CrawlProgress",
    "CrawlReport",
    "CrawlSpec",
    "Enqueue",
    "FetchOptions",
    "FetchOutcome",
    "FleetStatus",
    "HostStats",
    "Link",
    "LinkMessage",
    "PageChange",
    "PrepareRequest",
    "PrepareResult",
    "PreviousPage",
    "PreviousRequest",
    "ProxyEndpoint",
    "ProxyLease",
    "ProxyPool",
    "ProxyRoute",
    "ProxySpec",
    "ProxyStats",
    "ReportRequest",
    "RequestData",
    "RobotsRequest",
    "RobotsResult",
    "RobotsResults",
    "RobotsTarget",
    "SegmentData",
    "SegmentDelete",
    "SegmentRead",
    "SegmentWrite",
    "StoreProbe",
    "SitemapRequest",
    "SitemapResult",
    "SitemapResults",
    "SitemapTarget",
    "ShardCheckpoint",
    "ShardFailure",
    "ShardInput",
    "ShardReport",
    "ShardResult",
    "ShardTotals",
    "UrlTask",
    "WarcIndexRequest",
    "WarcTotals",
    "payload_bytes",
    "shard_workflow_id",
    "wire_json",
]

DEFAULT_USER_AGENT = "shardcrawl/0.1 (+https://github.com/shardcrawl/shardcrawl)"

# Failure classes that shardcrawl itself decides (Scrapy's network failures are classified in
# activities/batch_capture.py). The first three are not requests: nothing was sent.
ROBOTS_DISALLOWED = "robots_disallowed"
FORBIDDEN_ADDRESS = "forbidden_address"
NOT_FETCHED = "not_fetched"
DEFERRED = "deferred"
"""Never sent: its batch stopped at a Retry-After. Retried without counting an attempt."""
HOST_ABANDONED = "host_abandoned"
"""Never sent: its host was parked too often (see host_pressure)."""
ROBOTS_FETCH_FAILED = "robots_fetch_failed"
BATCH_FAILED = "BatchFailed"
"""Activity error types the workflows decide on. A batch that failed every attempt fails the
crawl (its URLs are never turned into failures: something is wrong with the fleet, not them)."""
STORE_UNAVAILABLE = "StoreUnavailable"
"""The store is down for now: the work goes back, and the shard waits for the store."""
REQUEST_NOT_TRANSFERABLE = "RequestNotTransferable"
"""A spider yielded a request no other worker could rebuild: the crawl fails, naming it."""
SPIDER_START_FAILED = "SpiderStartFailed"
"""Scrapy could not build or start the spider's crawler: the crawl fails, with the cause."""
SITEMAP_META = "shardcrawl_sitemap"
"""A page a sitemap listed carries the sitemap's fields in its request's meta under this key;
the batch writes them on its record (``sitemap_lastmod``, ...)."""
STORE_FAILED = "StoreFailed"
"""The store refuses for good (credentials, bucket, access): the crawl fails at once."""


PageChange = Literal["new", "changed", "unchanged", "gone"]
"""A page against the previous crawl, in an incremental one."""
CRAWL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}")
"""What a crawl id may be: a workflow id that is also one folder name in the output."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


_WIRE = SchemaSerializer(core_schema.any_schema())


def wire_json(value: Any) -> bytes:
    """A value as shardcrawl's data converter (shardcrawl.temporal.wire) writes it into
    history: JSON, with no field that holds its default (decoding fills those back in)."""
    return _WIRE.to_json(value, exclude_defaults=True)


def payload_bytes(value: BaseModel) -> int:
    """The size of a model as the data converter puts it in history (JSON bytes)."""
    return len(wire_json(value))


class RetrySpec(_Model):
    """URL-level retries, decided by the shard (Scrapy's RetryMiddleware is off)."""

    max_attempts: int = Field(
        default=3, ge=1, le=20, description="requests per URL, first included"
    )
    backoff_base_seconds: float = Field(
        default=1.0, ge=0.0, le=3600.0, description="wait before the 2nd attempt; doubles after"
    )
    backoff_max_seconds: float = Field(default=300.0, ge=0.0, le=86_400.0)
    budget_share: float = Field(
        default=0.2,
        gt=0.0,
        le=1.0,
        description="most share of a host's concurrency that retries may hold (at least 1)",
    )


class BlockSpec(_Model):
    """What counts as a block, and when a blocking host is parked."""

    statuses: list[int] = Field(default_factory=lambda: [403, 429])
    body_markers: list[str] = Field(
        default_factory=lambda: ["captcha", "access denied", "are you a robot", "unusual traffic"],
        description="case-insensitive text in the first 32 KB of a response body",
    )
    challenge_paths: list[str] = Field(
        default_factory=lambda: ["/cdn-cgi/challenge-platform", "/captcha", "/challenge"],
        description="a redirect to a path starting with one of these is a block",
    )
    park_block_rate: float = Field(
        default=0.5, gt=0.0, le=1.0, description="block rate over the window that parks a host"
    )
    park_window: int = Field(default=20, ge=1, le=1000, description="a host's last N responses")
    park_min_responses: int = Field(default=5, ge=1, le=1000)
    park_seconds: float = Field(
        default=60.0, ge=0.0, le=86_400.0, description="first cool-down; doubles on each park"
    )
    give_up_after_parks: int = Field(
        default=3, ge=1, le=100, description="parks in a row after which the host's URLs fail"
    )

    @field_validator("body_markers")
    @classmethod
    def _lower(cls, markers: list[str]) -> list[str]:
        return [m.lower() for m in markers if m]


class ProxyEndpoint(_Model):
    """One proxy identity. Its URL is also its name in status and reports."""

    url: str = Field(description="http(s)://host:port; credentials only as ${VARIABLE} names")
    capacity: int = Field(
        default=8, ge=1, le=100_000, description="most concurrent requests, whole fleet"
    )
    tags: list[str] = Field(default_factory=list, description="labels, e.g. a region")

    @field_validator("url")
    @classmethod
    def _proxy_url(cls, url: str) -> str:
        return check_proxy_url(url)


class ProxyPool(_Model):
    proxies: list[ProxyEndpoint] = Field(min_length=1, max_length=1000)

    @field_validator("proxies", mode="before")
    @classmethod
    def _bare_urls(cls, proxies: object) -> object:
        """A bare URL string is a proxy with the default capacity."""
        if isinstance(proxies, list):
            return [{"url": p} if isinstance(p, str) else p for p in proxies]
        return proxies


class ProxyRoute(_Model):
    """How requests to some domains go out, and from which fleet; the first route that
    matches a host wins."""

    domains: list[str] = Field(
        min_length=1, description="hosts, each with its subdomains, or * for every host"
    )
    mode: Literal["rotate", "sticky", "direct"] = Field(
        default="rotate",
        description="rotate: spread requests over the pool; sticky: one identity per host for "
        "a session or until it is banned; direct: no proxy",
    )
    pool: str | None = Field(default=None, description="the pool, unless direct")
    session_seconds: float = Field(
        default=600.0, gt=0.0, le=86_400.0, description="how long a sticky identity is kept"
    )
    fetch_queue: str | None = Field(
        default=None,
        description="the fleet whose workers fetch these hosts (shardcrawl worker "
        "--fetch-queue NAME); none or 'default': the main queue's workers",
    )

    @field_validator("fetch_queue")
    @classmethod
    def _fleet(cls, name: str | None) -> str | None:
        if name is None or name == DEFAULT_FLEET:
            return None
        return check_fleet_name(name)

    @field_validator("domains")
    @classmethod
    def _lower(cls, domains: list[str]) -> list[str]:
        return [d.strip().lower().rstrip(".") for d in domains]

    @model_validator(mode="after")
    def _pool_unless_direct(self) -> ProxyRoute:
        if self.mode == "direct" and self.pool is not None:
            raise ValueError(f"a direct route takes no pool (got pool {self.pool!r})")
        if self.mode != "direct" and self.pool is None:
            raise ValueError(f"a {self.mode} route needs a pool")
        return self

    def matches(self, host: str) -> bool:
        return "*" in self.domains or urls.host_in_domains(host, self.domains)


class ProxySpec(_Model):
    """Proxy pools and which domains use them. Without routes every request goes direct."""

    pools: dict[str, ProxyPool] = Field(default_factory=dict)
    routes: list[ProxyRoute] = Field(default_factory=list)
    cooldown_seconds: float = Field(
        default=5.0, gt=0.0, le=3600.0, description="first rest of a failing proxy; doubles"
    )
    max_cooldown_seconds: float = Field(default=300.0, gt=0.0, le=86_400.0)
    ban_seconds: float = Field(
        default=600.0,
        gt=0.0,
        le=86_400.0,
        description="how long a proxy blocked by a host rests for that host; doubles",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ProxySpec:
        owner: dict[str, str] = {}
        for name, pool in self.pools.items():
            for proxy in pool.proxies:
                if proxy.url in owner:
                    raise ValueError(
                        f"proxy {proxy.url!r} is in pools {owner[proxy.url]!r} and {name!r}: "
                        "a proxy belongs to one pool, which holds its capacity"
                    )
                owner[proxy.url] = name
        for i, route in enumerate(self.routes):
            if route.pool is not None and route.pool not in self.pools:
                known = ", ".join(sorted(self.pools)) or "none"
                raise ValueError(
                    f"routes[{i}] names pool {route.pool!r}, which is not defined (pools: {known})"
                )
        return self


class CrawlSpec(_Model):
    """What to crawl and how politely: the one input of a crawl (CLI, file, Temporal)."""

    # Declared before ``seeds`` so the seeds' validator can see it.
    allow_private_networks: bool = Field(
        default=False, description="allow private and loopback addresses (intranets and tests)"
    )
    strip_query_params: list[str] = Field(
        default_factory=list,
        description="query parameters dropped from every URL before dedup: names or glob "
        "patterns, any case (utm_*, sessionid, fbclid)",
    )
    seeds: list[str] = Field(min_length=1, description="http(s) URLs the crawl starts from")
    allowed_domains: list[str] = Field(
        default_factory=list,
        description="hosts (with subdomains) the crawl may visit; empty means the seeds' hosts",
    )
    include: list[str] = Field(
        default_factory=list,
        description="regular expressions; when any are given, a discovered URL (link, "
        "redirect, sitemap entry) must match one to be crawled",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="regular expressions; a discovered URL matching one is not crawled "
        "(exclude wins over include)",
    )
    max_pages: int = Field(default=10_000, ge=1, description="most URLs requested in the crawl")
    max_pages_per_host: int | None = Field(
        default=None, ge=1, description="most URLs requested from one host, whole fleet"
    )
    order: Literal["breadth_first", "depth_first", "priority"] = Field(
        default="breadth_first",
        description="per host: shallowest first, deepest first, or highest request priority "
        "first (then shallowest)",
    )
    max_depth: int = Field(default=5, ge=0, description="most link hops from a seed")
    concurrency_per_host: int = Field(
        default=4, ge=1, le=256, description="most concurrent requests to one host, whole fleet"
    )
    delay_seconds: float = Field(
        default=0.0, ge=0.0, le=3600.0, description="least time between requests to one host"
    )
    batch_size: int = Field(
        default=50, ge=1, le=2000, description="most requests in one crawl_batch, of any hosts"
    )
    shards: int = Field(default=4, ge=1, le=1024, description="domain-shard workflows")
    spider: str = Field(default="pages", min_length=1, description="spider name from spiders/")
    output: str = Field(
        default="output", min_length=1, description="a directory, file://PATH or s3://BUCKET/PREFIX"
    )
    max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=30)
    download_timeout_seconds: float = Field(default=30.0, gt=0.0, le=600.0)
    user_agent: str = Field(default=DEFAULT_USER_AGENT, min_length=1)
    obey_robots_txt: bool = True
    sitemaps: Literal["off", "discover", "only"] = Field(
        default="discover",
        description="discover: also crawl what the sitemaps named in robots.txt (and seeds "
        "that are sitemaps) list; only: crawl just that, following no links; off: ignore them",
    )
    retry: RetrySpec = Field(default_factory=RetrySpec)
    blocks: BlockSpec = Field(default_factory=BlockSpec)
    proxies: ProxySpec = Field(default_factory=ProxySpec)
    previous_crawl: str | None = Field(
        default=None,
        description="a crawl in the same output: its pages are requested again conditionally "
        "(ETag, Last-Modified) and an unchanged page's record carries over",
    )
    incremental: bool = Field(
        default=False,
        description="for a scheduled crawl without previous_crawl: the schedule's last "
        "completed run is the previous crawl",
    )
    history_events_per_run: int = Field(
        default=10_000,
        ge=100,
        le=40_000,
        description="a workflow run continues as new once its history has this many events",
    )
    warc: bool = Field(
        default=False,
        description="also write the crawl as WARC/1.1 files under OUT/ID/warc/, with a CDXJ index",
    )
    warc_dedup: Literal["off", "digest"] = Field(
        default="off",
        description="digest: a payload identical to the previous crawl's capture of the same URL "
        "is written as an identical-payload-digest revisit record",
    )
    store_bodies: bool = Field(
        default=False,
        description="keep page bodies in the store (OUT/ID/bodies/), referenced from the records",
    )

    @field_validator("seeds")
    @classmethod
    def _seeds_are_http_urls(cls, seeds: list[str], info: ValidationInfo) -> list[str]:
        allow_private = bool(info.data.get("allow_private_networks"))
        out = []
        strip = tuple(info.data.get("strip_query_params") or ())
        for seed in seeds:
            canonical = urls.canonicalize(seed, strip)
            if canonical is None:
                raise ValueError(f"seed {seed!r} is not an http(s) URL with a host")
            host = urls.hostname(canonical)
            if not allow_private and (
                host == "localhost" or (_is_ip(host) and urls.is_private_ip(host))
            ):
                raise ValueError(
                    f"seed {seed!r} is a private or loopback address: set "
                    "allow_private_networks (--allow-private-networks) to crawl it"
                )
            out.append(canonical)
        return out

    @field_validator("strip_query_params")
    @classmethod
    def _param_patterns(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            if not pattern or any(c in pattern for c in "&=#"):
                raise ValueError(
                    f"strip_query_params[{index}] {pattern!r} must be a parameter name or a "
                    "glob pattern, without & = or #"
                )
        return patterns

    @field_validator("include", "exclude")
    @classmethod
    def _regular_expressions(cls, patterns: list[str], info: ValidationInfo) -> list[str]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"{info.field_name}[{index}] {pattern!r} is not a regular expression: {exc}"
                ) from None
        return patterns

    @field_validator("allowed_domains")
    @classmethod
    def _domains_are_hostnames(cls, domains: list[str]) -> list[str]:
        out = []
        for domain in domains:
            name = domain.strip().lower().rstrip(".")
            if name.startswith("[") and name.endswith("]"):
                name = name[1:-1]
            if not name or "/" in name or (":" in name and not _is_ip(name)):
                raise ValueError(f"allowed domain {domain!r} must be a bare host name, no scheme")
            out.append(name)
        return out

    @field_validator("previous_crawl")
    @classmethod
    def _crawl_id(cls, crawl_id: str | None) -> str | None:
        if crawl_id is not None and not CRAWL_ID.fullmatch(crawl_id):
            raise ValueError(
                f"previous_crawl {crawl_id!r} is not a crawl id (letters, digits and . _ : -)"
            )
        return crawl_id

    @field_validator("output")
    @classmethod
    def _output_scheme(cls, output: str) -> str:
        scheme = urlsplit(output).scheme
        if scheme not in ("", "file", "s3"):
            raise ValueError(
                f"output {output!r} is not a directory, file://PATH or s3://BUCKET/PREFIX"
            )
        return output

    @model_validator(mode="after")
    def _dedup_needs_warc(self) -> CrawlSpec:
        if self.warc_dedup != "off" and not self.warc:
            raise ValueError(
                f"warc_dedup {self.warc_dedup!r} needs warc: true (--warc): it decides how "
                "WARC records are written"
            )
        return self

    def effective_allowed_domains(self) -> list[str]:
        """The allowed domains, defaulting to the seeds' host names."""
        if self.allowed_domains:
            return self.allowed_domains
        return sorted({urls.hostname(seed) for seed in self.seeds})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


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


class RequestData(_Model):
    """What a Scrapy request carries beyond its URL, depth and priority, so that any worker can
    rebuild it: callback and errback by method name on the spider, their arguments, ``meta``
    (JSON values), headers, and a non-GET's method and body. A plain GET that ``parse``
    handles has none (``UrlTask.request`` is then None), which keeps most payloads small."""

    callback: str | None = Field(default=None, description="spider method; None: parse")
    errback: str | None = None
    cb_kwargs: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    method: str = "GET"
    headers: dict[str, list[str]] = Field(default_factory=dict)
    body_b64: str = Field(default="", description="the body, base64")
    dont_filter: bool = Field(default=False, description="fetched even if seen before")
    request_class: str | None = Field(
        default=None, description="import path of a Request subclass (FormRequest, ...)"
    )


class UrlTask(_Model):
    """A request waiting to be fetched: its canonical URL, what the frontier orders it by, and
    (beyond a plain GET for ``parse``) the rest of the Scrapy request."""

    url: str
    depth: int = 0
    priority: int = 0
    redirects: int = 0
    attempt: int = Field(default=1, ge=1, description="which request of this URL this is")
    request: RequestData | None = None


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
    previous_files: list[int] = Field(
        default_factory=list, description="per shard: the previous crawl's item files it owns"
    )


class PreviousRequest(_Model):
    """A page of the previous crawl's URLs for one shard, from item file ``start`` on."""

    output: str
    crawl_id: str
    previous_crawl: str
    shard: int
    start: int


class PreviousPage(_Model):
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
    ``origin``, with that host's lease of its politeness budget (its own Scrapy download slot,
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


class Enqueue(_Model):
    """Parent to shard: URLs the shard owns, and page credits it may spend. ``seq`` orders them."""

    seq: int
    urls: list[UrlTask] = Field(default_factory=list)
    credits: int = 0
    seeds: bool = Field(default=False, description="seeds are not counted as discovered links")


class LinkMessage(_Model):
    """Shard to shard: links the receiver owns, found by the sender's batches. ``seq`` counts
    the sender's messages to this receiver (see shardcrawl.policy.link_counts). Plain links go
    as two columns (URL, depth); one with more (a priority, a redirect count, a request) goes
    whole."""

    sender: int
    seq: int
    urls: list[str] = Field(default_factory=list)
    depths: list[int] = Field(default_factory=list)
    rich: list[UrlTask] = Field(default_factory=list)

    @model_validator(mode="after")
    def _columns_match(self) -> LinkMessage:
        if len(self.urls) != len(self.depths):
            raise ValueError(f"{len(self.urls)} urls but {len(self.depths)} depths")
        return self

    @classmethod
    def of(cls, sender: int, seq: int, tasks: list[UrlTask]) -> LinkMessage:
        plain: list[UrlTask] = []
        rich: list[UrlTask] = []
        for task in tasks:
            (plain if task == UrlTask(url=task.url, depth=task.depth) else rich).append(task)
        return cls(
            sender=sender,
            seq=seq,
            urls=[t.url for t in plain],
            depths=[t.depth for t in plain],
            rich=rich,
        )

    def tasks(self) -> list[UrlTask]:
        plain = [UrlTask(url=u, depth=d) for u, d in zip(self.urls, self.depths, strict=True)]
        return plain + self.rich


class ShardReport(_Model):
    """Shard to parent: credit needs, whether it is idle, and how many link messages it has
    sent to each other shard and applied from each (the parent's test for the crawl's end)."""

    shard: int
    processed_seq: int
    idle: bool
    wants_credits: int = 0
    returned_credits: int = 0
    sent: dict[int, int] = Field(default_factory=dict, description="receiver -> messages")
    applied: dict[int, int] = Field(default_factory=dict, description="sender -> messages")
    totals: ShardTotals = Field(default_factory=ShardTotals)


class ShardCheckpoint(_Model):
    """A shard's state handed to its next run: small fields inline, the rest as segment keys."""

    generation: int
    processed_seq: int
    credits: int
    paused: bool
    batch_seq: int
    totals: ShardTotals
    seen_segments: list[str]
    frontier_segments: list[str]
    hosts_segments: list[str]
    robots_segments: list[str]
    retry_segments: list[str] = Field(default_factory=list)
    pressure_segments: list[str] = Field(default_factory=list)
    sitemap_segments: list[str] = Field(default_factory=list)
    resting: dict[str, float] = Field(
        default_factory=dict, description="host -> workflow time before which it may not lease"
    )
    pending: list[Enqueue] = Field(
        default_factory=list, description="messages received while saving, not yet applied"
    )
    pending_links: list[LinkMessage] = Field(
        default_factory=list, description="link messages received while saving"
    )
    link_counts: dict[str, Any] = Field(
        default_factory=dict, description="shardcrawl.policy.link_counts.LinkCounts.export()"
    )
    previous_next: int = Field(default=0, description="the previous crawl's next item file")
    records_seq: int = Field(default=0, description="files of records the shard wrote itself")
    series: TimeSeries = Field(default_factory=TimeSeries, description="the runs' time series")


def shard_workflow_id(crawl_id: str, shard: int) -> str:
    """A shard's workflow id: its crawl's id and its index (stable across continue-as-new)."""
    return f"{crawl_id}/shard-{shard}"


class ShardInput(_Model):
    crawl_id: str
    shard: int
    shard_count: int
    spec: CrawlSpec
    checkpoint: ShardCheckpoint | None = None
    previous_crawl: str | None = None
    previous_files: int = Field(default=0, description="the previous crawl's item files it owns")


class ShardResult(_Model):
    """A finished shard's counters; its per-host stats are in the store (``hosts_segments``)."""

    shard: int
    totals: ShardTotals
    hosts_segments: list[str]
    unfetched: int = Field(default=0, description="URLs left in the frontier (page limit, cancel)")
    series: TimeSeries = Field(default_factory=TimeSeries, description="bounded, see timeseries")


class ShardFailure(_Model):
    """Shard to parent, just before the shard fails: the parent cannot watch a shard started
    by an earlier run of itself, so the shard says so."""

    shard: int
    message: str


class CrawlCheckpoint(_Model):
    """The crawl workflow's state handed to its next run (small: a few entries per shard)."""

    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    generation: int
    started_at: datetime
    reports: list[bytes] = Field(
        description="the shards' last reports as segments.pack_records segments, inline: "
        "compressed, so a thousand shards' counters still fit one payload"
    )
    sent_seq: dict[int, int]
    granted_at_seq: dict[int, int]
    pending_urls: dict[int, list[UrlTask]]
    pending_credits: dict[int, int]
    credits_left: int
    paused: bool
    pause_changed: bool
    largest_payload_bytes: int
    previous_crawl: str | None = None


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


class WarcIndexRequest(_Model):
    """Merge a crawl's per-batch CDXJ parts into ``OUT/ID/warc/index.cdxj``."""

    crawl_id: str
    output: str


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
