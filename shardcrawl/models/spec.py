"""The user's crawl spec (``CrawlSpec``) and the models nested in it: retries, blocks,
proxy pools and routes, and their validation."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from shardcrawl.core import urls
from shardcrawl.core.fleet_names import DEFAULT_FLEET, check_fleet_name
from shardcrawl.core.proxy_urls import check_proxy_url
from shardcrawl.models.base import _Model

__all__ = [
    "CRAWL_ID",
    "DEFAULT_USER_AGENT",
    "BlockSpec",
    "CrawlSpec",
    "ProxyEndpoint",
    "ProxyPool",
    "ProxyRoute",
    "ProxySpec",
    "RetrySpec",
]

DEFAULT_USER_AGENT = "shardcrawl/0.1 (+https://github.com/shardcrawl/shardcrawl)"

CRAWL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}")
"""What a crawl id may be: a workflow id that is also one folder name in the output."""


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
