"""robots.txt: fetched once per origin per crawl into the store (many origins in one
activity), parsed by Protego per worker.

RFC 9309 outcomes: a 2xx body is the rules; a 4xx means no rules; a 5xx means the whole origin is
off limits for now. A network failure is not a verdict: the batches then fail per URL with that
failure, which is what a report should show for an unreachable host.
"""

from __future__ import annotations

from typing import Any

from protego import Protego
from scrapy import Spider
from temporalio import activity

from activities.batch_capture import CAPTURE_ARG, BatchCapture, PageCapture
from activities.lru import Lru
from activities.proxy_assign import proxy_slots
from activities.scrapy_runtime import ScrapyRuntime
from activities.stores import StoreCache
from shardcrawl import layout, urls
from shardcrawl.contracts import (
    FetchOptions,
    RobotsRequest,
    RobotsResult,
    RobotsResults,
    UrlTask,
)
from shardcrawl.scrapy_settings import fetch_settings

__all__ = ["RobotsActivities", "RobotsRules"]

ROBOTS_MAX_BYTES = 512 * 1024
# Sitemaps one robots.txt may name that the crawl reads.
MAX_SITEMAPS = 50


class _RobotsSpider(Spider):
    """Fetches nothing but the batch (one robots.txt URL); the capture keeps the body."""

    name = "_shardcrawl_robots"

    def parse(self, response: Any, **kwargs: Any) -> None:
        return None


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
    def __init__(self, *, runtime: ScrapyRuntime, stores: StoreCache):
        self._runtime = runtime
        self._stores = stores

    @activity.defn(name="fetch_robots")
    async def fetch_robots(self, request: RobotsRequest) -> RobotsResults:
        """Every target's robots.txt in one crawl, one request per host at a time; a
        forbidden address (the origin's, a redirect's, a proxy's) is refused inside Scrapy,
        before it connects."""
        targets = request.origins
        capture = BatchCapture(
            [UrlTask(url=t.origin + "/robots.txt") for t in targets],
            keep_bodies=True,
            proxies=proxy_slots({urls.hostname(t.origin): t.proxies for t in targets}),
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
                    "DOWNLOAD_MAXSIZE": min(request.fetch.max_response_bytes, ROBOTS_MAX_BYTES),
                }
            )
            await self._runtime.crawl(
                _RobotsSpider,
                settings,
                spider_kwargs={CAPTURE_ARG: capture},
                heartbeat=activity.heartbeat,
            )
        return RobotsResults(
            results=[
                await self._verdict(request, target.origin, page)
                for target, page in zip(targets, capture.pages, strict=True)
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
