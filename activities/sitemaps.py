"""fetch_sitemaps: many sitemaps in one crawler, each read as a stream into store pages.

A sitemap can list 50,000 URLs: its entries never travel in the payload. They are packed into
segments in the store as they are parsed (``layout.sitemap_segment_key``), and the result
names the segments, which the shard reads one at a time.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from shardcrawl.activities.documents import fetch_documents
from shardcrawl.activities.fetch_options import SharedFetchOptions
from shardcrawl.activities.page_capture import PageCapture
from shardcrawl.activities.scrapy_runtime import ScrapyRuntime
from shardcrawl.activities.sitemap_parser import SitemapReader
from shardcrawl.activities.stores import StoreCache
from shardcrawl.core import layout, urls
from shardcrawl.models import (
    SitemapRequest,
    SitemapResult,
    SitemapResults,
    SitemapTarget,
)
from shardcrawl.policy.segments import pack_records

__all__ = ["SITEMAP_MAX_BYTES", "SitemapActivities"]

# The sitemaps protocol's limit is 50 MB uncompressed; downloaded and decompressed sizes are
# both held to a little more. Past it the sitemap is ``oversize``.
SITEMAP_MAX_BYTES = 64 * 1024 * 1024
HEARTBEAT_EVERY = 5000


class SitemapActivities:
    def __init__(
        self, *, runtime: ScrapyRuntime, stores: StoreCache, fetch_options: SharedFetchOptions
    ):
        self._runtime = runtime
        self._stores = stores
        self._fetch_options = fetch_options

    @activity.defn(name="fetch_sitemaps")
    async def fetch_sitemaps(self, request: SitemapRequest) -> SitemapResults:
        """Every target in one crawl (``fetch_documents``), each then read as a stream."""
        request = await self._fetch_options.resolve(request)
        targets = request.targets
        pages = await fetch_documents(
            self._runtime,
            request.fetch,
            [(t.url, t.proxies) for t in targets],
            max_bytes=SITEMAP_MAX_BYTES,
        )
        results = [
            await self._read(request, target, page)
            for target, page in zip(targets, pages, strict=True)
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
