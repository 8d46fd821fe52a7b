"""fetch_sitemaps: many sitemaps in one crawler, each read as a stream into store pages.

A sitemap can list 50,000 URLs: its entries never travel in the payload. They are packed into
segments in the store as they are parsed (``layout.sitemap_segment_key``), and the result
names the segments, which the shard reads one at a time.
"""

from __future__ import annotations

from typing import Any

from scrapy import Spider
from temporalio import activity

from activities.batch_capture import CAPTURE_ARG, BatchCapture, PageCapture
from activities.proxy_assign import proxy_slots
from activities.scrapy_runtime import ScrapyRuntime
from activities.sitemap_parser import SitemapReader
from activities.stores import StoreCache
from shardcrawl import layout, urls
from shardcrawl.contracts import (
    SitemapRequest,
    SitemapResult,
    SitemapResults,
    SitemapTarget,
    UrlTask,
)
from shardcrawl.scrapy_settings import fetch_settings
from shardcrawl.segments import pack_records

__all__ = ["SITEMAP_MAX_BYTES", "SitemapActivities"]

# The sitemaps protocol's limit is 50 MB uncompressed; downloaded and decompressed sizes are
# both held to a little more. Past it the sitemap is ``oversize``.
SITEMAP_MAX_BYTES = 64 * 1024 * 1024
HEARTBEAT_EVERY = 5000


class _SitemapSpider(Spider):
    """Fetches nothing but the targets; the capture keeps the bodies."""

    name = "_shardcrawl_sitemaps"

    def parse(self, response: Any, **kwargs: Any) -> None:
        return None


class SitemapActivities:
    def __init__(self, *, runtime: ScrapyRuntime, stores: StoreCache):
        self._runtime = runtime
        self._stores = stores

    @activity.defn(name="fetch_sitemaps")
    async def fetch_sitemaps(self, request: SitemapRequest) -> SitemapResults:
        """Every target in one crawl, one request per host at a time; a forbidden address
        (the sitemap's, a redirect's, a proxy's) is refused inside Scrapy, before it
        connects."""
        targets = request.targets
        capture = BatchCapture(
            [UrlTask(url=t.url) for t in targets],
            keep_bodies=True,
            proxies=proxy_slots({urls.hostname(t.url): t.proxies for t in targets}),
        )
        if targets:
            settings = fetch_settings(request.fetch, reactor=self._runtime.reactor())
            settings.update(
                {
                    "CONCURRENT_REQUESTS": len(targets),
                    "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
                    "CONCURRENT_REQUESTS_PER_IP": 0,
                    "REDIRECT_ENABLED": True,
                    "REDIRECT_MAX_TIMES": 5,
                    "DOWNLOAD_MAXSIZE": SITEMAP_MAX_BYTES,
                    "DOWNLOAD_WARNSIZE": 0,
                }
            )
            await self._runtime.crawl(
                _SitemapSpider,
                settings,
                spider_kwargs={CAPTURE_ARG: capture},
                heartbeat=activity.heartbeat,
            )
        results = [
            await self._read(request, target, page)
            for target, page in zip(targets, capture.pages, strict=True)
        ]
        return SitemapResults(results=results)

    async def _read(
        self, request: SitemapRequest, target: SitemapTarget, page: PageCapture
    ) -> SitemapResult:
        if page.status is None:
            return SitemapResult(error=page.error)
        if not 200 <= page.status < 300:
            return SitemapResult(status=page.status, error=f"http_{page.status}")
        reader = SitemapReader(page.body or b"", max_bytes=SITEMAP_MAX_BYTES)
        counts = {"u": 0, "s": 0}
        strip = request.fetch.strip_query_params

        def records() -> Any:
            for entry in reader:
                url = urls.canonicalize(entry.url, strip)
                if url is None:
                    continue
                kind = "s" if entry.child else "u"
                counts[kind] += 1
                if (counts["u"] + counts["s"]) % HEARTBEAT_EVERY == 0:
                    activity.heartbeat()
                yield [kind, url, entry.lastmod, entry.changefreq, entry.priority]

        keys = []
        for part, data in enumerate(pack_records(records())):
            key = layout.sitemap_segment_key(request.crawl_id, target.url, part)
            await self._stores.put(request.output, key, data)
            keys.append(key)
        return SitemapResult(
            status=page.status,
            error=reader.error,
            pages=counts["u"],
            children=counts["s"],
            segments=keys,
        )
