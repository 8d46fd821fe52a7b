"""Fetching a few documents whole (robots.txt files, sitemaps): one crawler, one request per
host at a time, redirects followed, each body kept up to a size. A forbidden address (the
document's, a redirect's, a proxy's) is refused inside Scrapy, before it connects."""

from __future__ import annotations

from typing import Any

from scrapy import Spider
from temporalio import activity

from shardcrawl.activities.batch_capture import CAPTURE_ARG, BatchCapture
from shardcrawl.activities.page_capture import PageCapture
from shardcrawl.activities.proxy_assign import proxy_slots
from shardcrawl.activities.scrapy_runtime import ScrapyRuntime
from shardcrawl.activities.scrapy_settings import fetch_settings
from shardcrawl.core import urls
from shardcrawl.models import FetchOptions, ProxyLease, UrlTask

__all__ = ["fetch_documents"]


class _DocumentSpider(Spider):
    """Fetches nothing but its requests; the capture keeps the bodies."""

    name = "_shardcrawl_documents"

    def parse(self, response: Any, **kwargs: Any) -> None:
        return None


async def fetch_documents(
    runtime: ScrapyRuntime,
    fetch: FetchOptions,
    documents: list[tuple[str, list[ProxyLease]]],
    *,
    max_bytes: int,
) -> list[PageCapture]:
    """Each (URL, proxy slots of its host) fetched, in order; a page per document."""
    capture = BatchCapture(
        [UrlTask(url=url) for url, _ in documents],
        keep_bodies=True,
        proxies=proxy_slots({urls.hostname(url): leases for url, leases in documents}),
    )
    if documents:
        settings = fetch_settings(
            fetch, reactor=runtime.reactor(), bind_address=runtime.bind_address
        )
        settings.update(
            {
                "CONCURRENT_REQUESTS": len(documents),
                "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
                "CONCURRENT_REQUESTS_PER_IP": 0,
                "REDIRECT_ENABLED": True,
                "REDIRECT_MAX_TIMES": 5,
                "DOWNLOAD_MAXSIZE": max_bytes,
                "DOWNLOAD_WARNSIZE": 0,
            }
        )
        await runtime.crawl(
            _DocumentSpider,
            settings,
            spider_kwargs={CAPTURE_ARG: capture},
            heartbeat=activity.heartbeat,
        )
    return capture.pages
