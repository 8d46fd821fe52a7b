"""Scrapy settings of one batch: a pure function of the batch request, never a settings.py.

Scrapy fetches and parses; every decision that must hold across workers (retries, redirects,
robots.txt, dedup, depth, politeness) belongs to the shard, so the matching Scrapy components
are switched off here and the batch's allotment of the host budget becomes its concurrency.
"""

from __future__ import annotations

from typing import Any

from shardcrawl.core import urls
from shardcrawl.models import BatchRequest, FetchOptions

__all__ = [
    "CAPTURE_MIDDLEWARE",
    "GUARD_MIDDLEWARE",
    "HOLD_MIDDLEWARE",
    "PROXY_MIDDLEWARE",
    "batch_settings",
    "fetch_settings",
]

CAPTURE_MIDDLEWARE = "shardcrawl.activities.batch_capture.BatchCaptureMiddleware"
HOLD_MIDDLEWARE = "shardcrawl.activities.batch_capture.BatchHoldMiddleware"
PROXY_MIDDLEWARE = "shardcrawl.activities.proxy_assign.ProxyAssignMiddleware"
GUARD_MIDDLEWARE = "shardcrawl.activities.address_guard.AddressGuardMiddleware"


def fetch_settings(
    fetch: FetchOptions, *, reactor: str, bind_address: str | None = None
) -> dict[str, Any]:
    """Settings every shardcrawl crawler shares; they outrank a spider's custom_settings.
    ``reactor`` and ``bind_address`` are the worker's (its outgoing IP: None, the system's
    choice)."""
    settings: dict[str, Any] = {
        "TWISTED_REACTOR": reactor,
        "USER_AGENT": fetch.user_agent,
        "DOWNLOAD_MAXSIZE": fetch.max_response_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "DOWNLOAD_TIMEOUT": fetch.download_timeout_seconds,
        "DNS_TIMEOUT": min(fetch.download_timeout_seconds, 20.0),
        "SHARDCRAWL_ALLOW_PRIVATE_NETWORKS": fetch.allow_private_networks,
        "ROBOTSTXT_OBEY": False,
        "RETRY_ENABLED": False,
        "REDIRECT_ENABLED": False,
        "METAREFRESH_ENABLED": False,
        "COOKIES_ENABLED": False,
        "AUTOTHROTTLE_ENABLED": False,
        "DOWNLOAD_DELAY_JITTER": 0,
        "REMOTE_CONTROL_ENABLED": False,
        "DEPTH_LIMIT": 0,
        "DEPTH_STATS_VERBOSE": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOGSTATS_INTERVAL": 0,
        "MEMUSAGE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "DUPEFILTER_CLASS": "scrapy.dupefilters.BaseDupeFilter",
        "STATS_CLASS": "scrapy.statscollectors.DummyStatsCollector",
        # Scrapy starts CONCURRENT_ITEMS cooperative tasks per response (default 100) to run
        # item pipelines in parallel: a third of its CPU per page when a page yields one item.
        "CONCURRENT_ITEMS": 4,
        "SPIDER_MIDDLEWARES": {
            CAPTURE_MIDDLEWARE: 1000,
            # The shard tracks depth; per-crawl stats are ours, not Scrapy's.
            "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
        },
        "DOWNLOADER_MIDDLEWARES": {
            # First, so a request held by a Retry-After is never sent.
            HOLD_MIDDLEWARE: 1,
            # Before HttpProxyMiddleware (750), which reads the proxy it sets (None: direct).
            PROXY_MIDDLEWARE: 700,
            # After HttpProxyMiddleware (750): judges the target's and the proxy's addresses,
            # which the connection then uses (resolved once, activities/address_pins.py).
            GUARD_MIDDLEWARE: 760,
            "scrapy.downloadermiddlewares.stats.DownloaderStats": None,
        },
        "EXTENSIONS": {
            "scrapy.extensions.logstats.LogStats": None,
            "scrapy.extensions.corestats.CoreStats": None,
        },
    }
    if bind_address:
        settings["DOWNLOAD_BIND_ADDRESS"] = (bind_address, 0)
    return settings


def batch_settings(
    request: BatchRequest, *, reactor: str, bind_address: str | None = None
) -> dict[str, Any]:
    """Each host's allotment of its budget as its own Scrapy download slot (concurrency and
    delay); the crawler's total is their sum, so no host waits for another's slots."""
    settings = fetch_settings(request.fetch, reactor=reactor, bind_address=bind_address)
    slots = {
        urls.hostname(part.origin): {
            "concurrency": part.concurrency,
            "delay": part.delay_seconds,
            "jitter": 0,
        }
        for part in request.slices
    }
    settings.update(
        {
            "CONCURRENT_REQUESTS": sum(part.concurrency for part in request.slices),
            "CONCURRENT_REQUESTS_PER_DOMAIN": min(part.concurrency for part in request.slices),
            "CONCURRENT_REQUESTS_PER_IP": 0,
            "DOWNLOAD_DELAY": max(part.delay_seconds for part in request.slices),
            "DOWNLOAD_SLOTS": slots,
            # Takes the next request from the slot with the fewest in the downloader, so a
            # host with many queued requests cannot stand in front of the others.
            "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
        }
    )
    return settings
