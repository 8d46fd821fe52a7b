"""Sends a batch's requests through the proxy slots the shard leased for their host.

Each request takes a free slot of one of its host's proxies, in turn (so a rotating host
spreads over its proxies), and gives it back when it leaves the downloader. A host's
concurrency in the batch is the sum of its slots, so a slot is nearly always free; when none
is (a request still finishing), the request waits for one rather than go over a proxy's share.
A host of the batch without proxy slots goes direct.

Scrapy's ``HttpProxyMiddleware`` (priority 750) then turns ``meta["proxy"]`` into the proxy
connection and its ``Proxy-Authorization`` header; download slots stay keyed by the target
host, so a host's politeness is counted per host whatever proxies carry its requests.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from temporalio.exceptions import ApplicationError
from twisted.internet.defer import Deferred

from activities.batch_capture import PROXY_META, SLOT_META, capture_of
from shardcrawl.contracts import ProxyLease
from shardcrawl.proxy_urls import MissingCredential, resolve

__all__ = ["ProxyAssignMiddleware", "ProxySlots", "proxy_slots"]

_GIVEN = "shardcrawl_proxy_given"


class ProxySlots:
    """A batch's proxy leases, with their credentials filled from this worker's environment
    (``proxy_urls.MissingCredential`` if one is missing)."""

    def __init__(self, leases: list[ProxyLease]) -> None:
        self.urls = {lease.proxy: resolve(lease.proxy) for lease in leases}
        self._free = {lease.proxy: lease.slots for lease in leases}
        self._order = [lease.proxy for lease in leases]
        self._next = 0
        self._waiting: deque[Deferred[None]] = deque()

    def take(self) -> str | None:
        """The next proxy in turn with a free slot, which is now taken; None if all are busy."""
        for i in range(len(self._order)):
            name = self._order[(self._next + i) % len(self._order)]
            if self._free[name] > 0:
                self._free[name] -= 1
                self._next = (self._next + i + 1) % len(self._order)
                return name
        return None

    def give(self, name: str) -> None:
        self._free[name] += 1
        if self._waiting:
            self._waiting.popleft().callback(None)

    def wait(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        return waiter


def proxy_slots(leases: dict[str, list[ProxyLease]]) -> dict[str, ProxySlots]:
    """The slots of each host of a batch that has proxy leases (hosts without go direct). A
    worker without the credentials the spec names fails the crawl, saying which variable is
    missing, rather than every URL."""
    try:
        return {host: ProxySlots(held) for host, held in leases.items() if held}
    except MissingCredential as exc:
        raise ApplicationError(str(exc), type="ProxyCredentialMissing", non_retryable=True) from exc


class ProxyAssignMiddleware:
    """A downloader middleware, before ``HttpProxyMiddleware``; off when every host of the
    batch goes direct."""

    def __init__(self, slots: dict[str, ProxySlots]) -> None:
        self.slots = slots

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ProxyAssignMiddleware:
        slots = capture_of(crawler).proxies
        if not slots:
            raise NotConfigured
        mw = cls(slots)
        crawler.signals.connect(mw.on_left, signal=signals.request_left_downloader)
        return mw

    async def process_request(self, request: Request, spider: Any = None) -> None:
        slots = self.slots.get(request.meta.get(SLOT_META, ""))
        if slots is None:
            return  # a direct host
        name = slots.take()
        while name is None:
            await slots.wait()
            name = slots.take()
        request.meta[PROXY_META] = name
        request.meta[_GIVEN] = False  # a redirect's request copies the meta of the first
        request.meta["proxy"] = slots.urls[name]

    def _give_back(self, request: Request) -> None:
        """Once per request, whichever way it ends (the three paths overlap)."""
        name = request.meta.get(PROXY_META)
        if name is not None and not request.meta.get(_GIVEN):
            request.meta[_GIVEN] = True
            self.slots[request.meta[SLOT_META]].give(name)

    def on_left(self, request: Request, spider: Any = None) -> None:
        self._give_back(request)

    def process_response(
        self, request: Request, response: Response, spider: Any = None
    ) -> Response:
        self._give_back(request)
        return response

    def process_exception(self, request: Request, exception: Exception, spider: Any = None) -> None:
        self._give_back(request)
