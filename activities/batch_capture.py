"""Adapts any ordinary Scrapy spider to one batch: exactly the batch's requests go out, each to
its own callback with its own arguments, every request the spider yields (from a callback or an
errback) comes back to the shard instead of being scheduled, and every response, item and
failure is recorded per request.

``BatchCapture`` is the record of one crawl; ``BatchCaptureMiddleware`` (a spider middleware, the
closest one to the spider) feeds it. The capture object travels as a spider argument (Scrapy
deep-copies settings), so one process can run many batches at once without shared state.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from twisted.python.failure import Failure

from shardcrawl.activities.fetch_failures import HeldByRetryAfter, classify_failure
from shardcrawl.activities.page_capture import FoundRequest, PageCapture
from shardcrawl.activities.request_codec import RequestNotTransferable, request_data, scrapy_request
from shardcrawl.activities.wire_capture import Truncated, WireRecorder
from shardcrawl.core.urls import hostname
from shardcrawl.models import BlockSpec, UrlTask
from shardcrawl.policy.blocks import block_reason, holds_host, retry_after_seconds

if TYPE_CHECKING:
    from shardcrawl.activities.proxy_assign import ProxySlots

__all__ = [
    "CAPTURE_ARG",
    "BatchCapture",
    "BatchCaptureMiddleware",
    "BatchHoldMiddleware",
    "PROXY_AUTH_REFUSED",
    "PROXY_ERROR",
    "proxy_fault",
    "PROXY_META",
    "SLOT_META",
    "capture_of",
]

CAPTURE_ARG = "shardcrawl_capture"
_META_KEY = "shardcrawl_url"
SLOT_META = "download_slot"
"""Scrapy's download slot of a request: its host, as the shard's politeness keys it."""
PROXY_META = "shardcrawl_proxy"
"""The proxy (its spec URL) a request went through, set by proxy_assign."""
PROXY_AUTH_REFUSED = "proxy_auth"
PROXY_ERROR = "proxy_error"
"""A proxy's own 502/503/504: it says it could not reach or hear from the target."""


class BatchCapture:
    """The record of one batch crawl, by the index of the batch request each response
    belongs to."""

    def __init__(
        self,
        tasks: list[UrlTask],
        *,
        keep_bodies: bool = False,
        blocks: BlockSpec | None = None,
        proxies: dict[str, ProxySlots] | None = None,
        conditions: dict[str, dict[str, str]] | None = None,
        wire_limit: int | None = None,
    ) -> None:
        """``proxies``: the proxy slots of each host that goes through proxies (a host not in
        it goes direct). ``conditions``: request headers that make a URL's request
        conditional (If-None-Match, If-Modified-Since), for an incremental crawl.
        ``wire_limit``: keep each exchange as sent and received (for WARC), bodies cut at
        that many bytes."""
        self.keep_bodies = keep_bodies
        self.recorder = WireRecorder(self, max_bytes=wire_limit) if wire_limit is not None else None
        self.blocks = blocks or BlockSpec()
        self.proxies = proxies or {}
        self.conditions = conditions or {}
        # Per host (its download slot): until when a Retry-After it sent holds its requests.
        self.hold_until: dict[str, float] = {}
        self.tasks = tasks
        self.pages = [
            PageCapture(url=t.url, depth=t.depth, errback=t.request.errback if t.request else None)
            for t in tasks
        ]
        self.spider: Any = None
        self.problem: str | None = None
        """Why a request the spider yielded cannot travel (the batch then fails, saying so)."""

    def requests(self, spider: Any) -> list[Request]:
        """The batch's requests, rebuilt for this spider; one that cannot be (the spider lost
        the method its callback names) is the batch's problem, reported when it ends."""
        self.spider = spider
        out = []
        for index, task in enumerate(self.tasks):
            try:
                request = scrapy_request(
                    task,
                    spider,
                    # The host is the download slot, whatever the spider's meta says, so
                    # each host gets the concurrency and delay of its own allotment.
                    meta={_META_KEY: index, "depth": task.depth, SLOT_META: hostname(task.url)},
                    headers=self.conditions.get(task.url),
                    errback=self.on_error,
                )
            except RequestNotTransferable as exc:
                self.problem = self.problem or f"{exc} (to rebuild {task.url})"
                continue
            out.append(request)
        return out

    def page_of(self, request: Request | None) -> PageCapture | None:
        index = request.meta.get(_META_KEY) if request is not None else None
        return self.pages[index] if isinstance(index, int) else None

    def on_response(self, response: Response, request: Request, spider: Any = None) -> None:
        page = self.page_of(request)
        if page is None:
            return
        page.fetched_at = time.time()
        page.proxy = request.meta.get(PROXY_META)
        latency = request.meta.get("download_latency")
        page.latency_ms = round(latency * 1000) if latency is not None else None
        fault = proxy_fault(response) if page.proxy is not None else None
        if fault is not None:
            # The proxy's own answer (credentials refused, upstream failed): its failure, not
            # the host's, so it counts against the proxy and the URL goes again elsewhere.
            page.error = fault
            return
        page.status = response.status
        page.size_bytes = len(response.body)
        if self.keep_bodies:
            page.body = response.body
        page.etag = _header(response, b"ETag")
        page.last_modified = _header(response, b"Last-Modified")
        if 200 <= response.status < 300:
            page.content_hash = hashlib.blake2b(response.body, digest_size=16).hexdigest()
        ctype = response.headers.get(b"Content-Type")
        page.content_type = ctype.decode("latin-1").split(";")[0].strip().lower() if ctype else None
        self.judge(response, request)

    def judge(self, response: Response, request: Request) -> PageCapture | None:
        """The response's redirect target, block reason and Retry-After, worked out once per
        page (a batch URL gets one response): first when it is downloaded, to hold the batch."""
        page = self.page_of(request)
        if page is None or page.judged:
            return page
        page.judged = True
        location = response.headers.get(b"Location")
        if 300 <= response.status < 400 and location:
            page.location = response.urljoin(location.decode("latin-1"))
        page.blocked = block_reason(response.status, response.body, page.location, self.blocks)
        page.retry_after = retry_after_seconds(
            response.headers.get(b"Retry-After"), now=datetime.now(UTC)
        )
        return page

    def on_error(self, failure: Failure) -> Any:
        """Every batch request's errback: records a download failure, then calls the spider's
        own errback, if the request had one, and takes the requests it yields as links."""
        request = _request_of(failure)
        page = self.page_of(request)
        if page is None:
            return None
        if page.status is None and page.error is None:
            # (A proxy's own answer was classified when it came: the HttpError that the
            # spider middleware raises for it next says nothing more.)
            page.error = classify_failure(failure.value)
            page.fetched_at = time.time()
            page.proxy = request.meta.get(PROXY_META) if request is not None else None
            if self.recorder is not None and isinstance(failure.value, Truncated):
                page.wire = self.recorder.on_truncated(failure.value, request)
        if page.errback is None or isinstance(failure.value, HeldByRetryAfter):
            return None
        output = getattr(self.spider, page.errback)(failure)
        if inspect.isasyncgen(output):
            return self._links_of_async(output, page)
        return None if output is None else self._links_of(output, page)

    def _links_of(self, output: Iterable[Any], page: PageCapture) -> Iterator[Any]:
        for obj in output:
            if isinstance(obj, Request):
                self.found(obj, page)
            else:
                yield obj

    async def _links_of_async(
        self, output: AsyncIterator[Any], page: PageCapture
    ) -> AsyncIterator[Any]:
        async for obj in output:
            if isinstance(obj, Request):
                self.found(obj, page)
            else:
                yield obj

    def on_item(self, item: Any, response: Any, spider: Any = None) -> None:
        page = self.page_of(_request_of(response))
        if page is not None:
            page.items.append(ItemAdapter(item).asdict())

    def on_spider_error(self, failure: Failure, response: Response, spider: Any = None) -> None:
        """A callback that raised: its page's record says so (``spider_error``), and the
        report counts it by exception type; what it yielded before the raise is kept."""
        page = self.page_of(response.request if response is not None else None)
        if page is not None and page.spider_error is None:
            page.spider_error = f"{type(failure.value).__name__}: {failure.value}"

    def on_link(self, request: Request, response: Response | None) -> None:
        """A request a callback yielded: the spider decides what to follow, the shard when."""
        page = self.page_of(response.request if response is not None else None)
        if page is not None:
            self.found(request, page)

    def found(self, request: Request, page: PageCapture) -> None:
        try:
            data = request_data(request, self.spider)
        except RequestNotTransferable as exc:
            self.problem = self.problem or f"{exc} (yielded on {page.url})"
            return
        page.links.append(FoundRequest(url=request.url, priority=request.priority, request=data))


def _request_of(response_or_failure: Any) -> Request | None:
    """The request behind a response, or behind a failure (a download error carries it; an
    HttpError carries its response)."""
    request = getattr(response_or_failure, "request", None)
    if request is None and isinstance(response_or_failure, Failure):
        response = getattr(response_or_failure.value, "response", None)
        request = getattr(response, "request", None)
    return request if isinstance(request, Request) else None


def proxy_fault(response: Response) -> str | None:
    """Whether a response that came through a proxy is the proxy's own failure: a 407, or a
    502/503/504 the proxy made itself. A proxy that generates an error says so with an
    ``error=`` parameter in ``Proxy-Status`` (RFC 9209: Envoy, Fastly, Cloudflare, Squid 6
    and our proxy lab) or with Squid's ``X-Squid-Error``; a target's own 502 passed through a
    proxy carries neither (at most ``Proxy-Status: NAME; received-status=502``)."""
    if response.status == 407:
        return PROXY_AUTH_REFUSED
    if response.status not in (502, 503, 504):
        return None
    status = (_header(response, b"Proxy-Status") or "").lower()
    if "error=" in status.replace(" ", "") or response.headers.get(b"X-Squid-Error"):
        return PROXY_ERROR
    return None


def _header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


def capture_of(crawler: Crawler) -> BatchCapture:
    capture = getattr(crawler.spider, CAPTURE_ARG, None)
    if not isinstance(capture, BatchCapture):
        raise RuntimeError(f"the spider argument {CAPTURE_ARG} must be this crawl's BatchCapture")
    return capture


class BatchHoldMiddleware:
    """A downloader middleware: once a host sent a Retry-After (with a 429, a 5xx or a
    block), the batch's remaining requests for that host are not sent; they go back to the
    shard as ``deferred``, and the shard holds the host until the Retry-After ends."""

    def __init__(self, capture: BatchCapture, crawler: Crawler) -> None:
        self.capture = capture
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BatchHoldMiddleware:
        mw = cls(capture_of(crawler), crawler)
        # response_downloaded fires before the downloader takes the next queued request.
        crawler.signals.connect(mw.on_downloaded, signal=signals.response_downloaded)
        return mw

    def process_request(self, request: Request, spider: Any = None) -> None:
        until = self.capture.hold_until.get(request.meta.get(SLOT_META, ""), 0.0)
        if until > time.time():
            raise HeldByRetryAfter(f"held by Retry-After until {until:.3f}")

    def on_downloaded(self, response: Response, request: Request, spider: Any = None) -> None:
        page = self.capture.judge(response, request)
        if (
            page is None
            or page.retry_after is None
            or not holds_host(response.status, page.blocked)
        ):
            return
        host = request.meta.get(SLOT_META, "")
        holds = self.capture.hold_until
        holds[host] = max(holds.get(host, 0.0), time.time() + page.retry_after)
        # The host's requests already queued in the downloader passed process_request: fail
        # them too. Other hosts of the batch go on.
        downloader = self.crawler.engine.downloader if self.crawler.engine else None
        slot = downloader.slots.get(host) if downloader else None
        while slot is not None and slot.queue:
            _, queued = slot.queue.popleft()
            queued.errback(Failure(HeldByRetryAfter("held by Retry-After")))


class BatchCaptureMiddleware:
    """Replaces the spider's start with the batch and turns yielded requests into links."""

    def __init__(self, capture: BatchCapture, crawler: Crawler) -> None:
        self.capture = capture
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BatchCaptureMiddleware:
        capture = capture_of(crawler)
        mw = cls(capture, crawler)
        crawler.signals.connect(capture.on_response, signal=signals.response_received)
        crawler.signals.connect(capture.on_item, signal=signals.item_scraped)
        crawler.signals.connect(capture.on_spider_error, signal=signals.spider_error)
        if capture.recorder is not None:
            capture.recorder.connect(crawler.signals)
        return mw

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        for request in self.capture.requests(self.crawler.spider):
            yield request

    def process_spider_output(
        self, response: Response, result: Iterable[Any], spider: Any = None
    ) -> Iterable[Any]:
        for obj in result:
            if isinstance(obj, Request):
                self.capture.on_link(obj, response)
            else:
                yield obj

    async def process_spider_output_async(
        self, response: Response, result: AsyncIterator[Any], spider: Any = None
    ) -> AsyncIterator[Any]:
        async for obj in result:
            if isinstance(obj, Request):
                self.capture.on_link(obj, response)
            else:
                yield obj
