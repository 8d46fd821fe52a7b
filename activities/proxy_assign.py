"""Sends a batch's requests through the proxy slots the shard leased for their host.

Each request takes a free slot of the host's proxy that has carried the fewest of its
requests in this batch (in turn among equals, so a rotating host spreads evenly over its
proxies), and gives it back when it leaves the downloader. When that proxy's slots are busy,
the request waits for one rather than go over a proxy's lease or far ahead on another proxy.
A proxy that fails to carry a request (refused, lost, its own 407 or 502) carries none of the
host's others in the batch, unless every proxy of the host failed.

A host of the batch without proxy slots goes direct, and direct means direct: its requests
get ``meta["proxy"] = None``, so ``HttpProxyMiddleware`` ignores the worker's
``http_proxy``/``https_proxy`` environment (and any proxy a spider set in ``meta``).

Scrapy's ``HttpProxyMiddleware`` (priority 750) then turns ``meta["proxy"]`` into the proxy
connection and its ``Proxy-Authorization`` header; download slots stay keyed by the target
host, so a host's politeness is counted per host whatever proxies carry its requests.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from temporalio.exceptions import ApplicationError
from twisted.internet.defer import Deferred

from shardcrawl.activities.batch_capture import PROXY_META, SLOT_META, capture_of, proxy_fault
from shardcrawl.activities.fetch_failures import classify_failure
from shardcrawl.core.proxy_urls import MissingCredential, resolve
from shardcrawl.models import ProxyLease
from shardcrawl.policy.proxy_health import PROXY_FAILURES

__all__ = ["ProxyAssignMiddleware", "ProxySlots", "proxy_slots"]

_GIVEN = "shardcrawl_proxy_given"
# Requests one proxy may carry beyond the host's least used one before a request waits.
SPREAD_SLACK = 1


class ProxySlots:
    """A batch's proxy leases, with their credentials filled from this worker's environment
    (``proxy_urls.MissingCredential`` if one is missing)."""

    def __init__(self, leases: list[ProxyLease]) -> None:
        self.urls = {lease.proxy: resolve(lease.proxy) for lease in leases}
        self._free = {lease.proxy: lease.slots for lease in leases}
        self._order = [lease.proxy for lease in leases]
        self._sent = dict.fromkeys(self._order, 0)
        self._failed: set[str] = set()
        self._next = 0
        self._waiting: deque[Deferred[None]] = deque()

    def take(self) -> str | None:
        """A slot of the proxy that has carried the fewest requests (in turn among equals),
        or of one at most ``SPREAD_SLACK`` ahead of it, now taken; None if those are busy."""
        working = [n for n in self._order if n not in self._failed] or self._order
        fewest = min(self._sent[n] for n in working)
        for most in (fewest, fewest + SPREAD_SLACK):
            for i in range(len(self._order)):
                name = self._order[(self._next + i) % len(self._order)]
                if name in working and self._free[name] > 0 and self._sent[name] <= most:
                    return self._taken(name, i)
        return None

    def _taken(self, name: str, i: int) -> str:
        self._free[name] -= 1
        self._sent[name] += 1
        self._next = (self._next + i + 1) % len(self._order)
        return name

    def give(self, name: str, *, failed: bool = False) -> None:
        """A slot back; ``failed``: the proxy failed to carry the request."""
        self._free[name] += 1
        if failed:
            self._failed.add(name)
        # Every waiter looks again: a failed proxy may change which one may go.
        waiting, self._waiting = self._waiting, deque()
        for waiter in waiting:
            waiter.callback(None)

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
        mw = cls(capture_of(crawler).proxies)
        crawler.signals.connect(mw.on_left, signal=signals.request_left_downloader)
        return mw

    async def process_request(self, request: Request, spider: Any = None) -> None:
        slots = self.slots.get(request.meta.get(SLOT_META, ""))
        if slots is None:
            request.meta["proxy"] = None  # direct: no proxy from the environment either
            return
        name = slots.take()
        while name is None:
            await slots.wait()
            name = slots.take()
        request.meta[PROXY_META] = name
        request.meta[_GIVEN] = False  # a redirect's request copies the meta of the first
        request.meta["proxy"] = slots.urls[name]

    def _give_back(self, request: Request, *, failed: bool = False) -> None:
        """Once per request, whichever way it ends (the three paths overlap: the first one
        decides whether the proxy failed, and the signal's comes last)."""
        name = request.meta.get(PROXY_META)
        if name is not None and not request.meta.get(_GIVEN):
            request.meta[_GIVEN] = True
            self.slots[request.meta[SLOT_META]].give(name, failed=failed)

    def on_left(self, request: Request, spider: Any = None) -> None:
        self._give_back(request)

    def process_response(
        self, request: Request, response: Response, spider: Any = None
    ) -> Response:
        self._give_back(request, failed=proxy_fault(response) is not None)
        return response

    def process_exception(self, request: Request, exception: Exception, spider: Any = None) -> None:
        # A timeout is the proxy's only when it repeats (proxy_health): it keeps its turn.
        failure = classify_failure(exception)
        self._give_back(request, failed=failure in PROXY_FAILURES and failure != "timeout")
