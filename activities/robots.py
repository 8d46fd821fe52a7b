"""robots.txt: fetched once per origin per crawl into the store (many origins in one
activity), parsed by Protego per worker.

RFC 9309 outcomes: a 2xx body is the rules; a 4xx means no rules; a 5xx means the whole origin is
off limits for now. A network failure is not a verdict: the batches then fail per URL with that
failure, which is what a report should show for an unreachable host.
"""

from __future__ import annotations

from protego import Protego
from temporalio import activity

from shardcrawl.activities.documents import fetch_documents
from shardcrawl.activities.fetch_options import SharedFetchOptions
from shardcrawl.activities.lru import Lru
from shardcrawl.activities.page_capture import PageCapture
from shardcrawl.activities.scrapy_runtime import ScrapyRuntime
from shardcrawl.activities.stores import StoreCache
from shardcrawl.core import layout, urls
from shardcrawl.models import (
    FetchOptions,
    RobotsRequest,
    RobotsResult,
    RobotsResults,
)

__all__ = ["RobotsActivities", "RobotsRules"]

ROBOTS_MAX_BYTES = 512 * 1024
# Sitemaps one robots.txt may name that the crawl reads.
MAX_SITEMAPS = 50


class RobotsRules:
    """Parsed robots.txt per store key, kept for the most recent origins of this worker."""

    def __init__(self, stores: StoreCache, *, capacity: int = 1024) -> None:
        self._stores = stores
        self._parsed: Lru[tuple[str, str], Protego] = Lru(capacity)

    async def allows(self, output: str, key: str, url: str, user_agent: str) -> bool:
        rules = await self._rules(output, key)
        return rules.can_fetch(url, user_agent)

    async def _rules(self, output: str, key: str) -> Protego:
        rules = self._parsed.get((output, key))
        if rules is None:
            body = await self._stores.get_bytes(output, key) or b""
            rules = self._parsed.put((output, key), Protego.parse(body.decode("utf-8", "replace")))
        return rules


class RobotsActivities:
    def __init__(
        self, *, runtime: ScrapyRuntime, stores: StoreCache, fetch_options: SharedFetchOptions
    ):
        self._runtime = runtime
        self._stores = stores
        self._fetch_options = fetch_options

    @activity.defn(name="fetch_robots")
    async def fetch_robots(self, request: RobotsRequest) -> RobotsResults:
        """Every target's robots.txt in one crawl (``fetch_documents``)."""
        request = await self._fetch_options.resolve(request)
        targets = request.origins
        pages = await fetch_documents(
            self._runtime,
            request.fetch,
            [(t.origin + "/robots.txt", t.proxies) for t in targets],
            max_bytes=min(request.fetch.max_response_bytes, ROBOTS_MAX_BYTES),
        )
        return RobotsResults(
            results=[
                await self._verdict(request, target.origin, page)
                for target, page in zip(targets, pages, strict=True)
            ]
        )

    async def _verdict(
        self, request: RobotsRequest, origin: str, page: PageCapture
    ) -> RobotsResult:
        if page.status is None:
            return RobotsResult(error=page.error)
        if 200 <= page.status < 300:
            key = layout.robots_key(request.crawl_id, origin)
            body = page.body or b""
            await self._stores.put(request.output, key, body)
            return RobotsResult(
                key=key, status=page.status, sitemaps=_sitemaps(body, request.fetch)
            )
        if page.status >= 500:
            return RobotsResult(status=page.status, disallow_all=True)
        return RobotsResult(status=page.status)


def _sitemaps(body: bytes, fetch: FetchOptions) -> list[str]:
    """The robots.txt's Sitemap: lines, canonical, at most MAX_SITEMAPS of them."""
    named = Protego.parse(body.decode("utf-8", "replace")).sitemaps
    found = (urls.canonicalize(url, fetch.strip_query_params) for url in named)
    return list(dict.fromkeys(url for url in found if url))[:MAX_SITEMAPS]
