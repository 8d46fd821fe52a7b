"""Keeps each batch response as it came off the wire, for the WARC archive.

Scrapy's downloader middlewares change a response before the spider sees it (content
decoding rewrites the body and drops ``Content-Encoding``), so the exchange is taken at
``response_downloaded``, which the downloader sends before any middleware runs.

A body past ``max_response_bytes`` is stopped here rather than by Scrapy's own limit (which
throws away what came, and drops a response whose declared length is too large before reading
any of it): ``Truncated``, a ``StopDownload``, reaches the batch's errback with the first
``max_response_bytes`` of the body, and the archive keeps them marked as truncated. The URL
still ends as ``oversize``, as it does without WARC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scrapy import Request, signals
from scrapy.exceptions import StopDownload
from scrapy.http import Response
from scrapy.signalmanager import SignalManager

from shardcrawl.activities.warc_writer import WireExchange

if TYPE_CHECKING:
    from shardcrawl.activities.batch_capture import BatchCapture

__all__ = ["Truncated", "WireRecorder", "exchange_of"]

# Credentials for our proxies are ours, not part of the exchange with the site.
_PRIVATE_HEADERS = frozenset({"proxy-authorization"})
_LIFTED = "shardcrawl_maxsize_lifted"


class Truncated(StopDownload):
    """A response body cut at max_response_bytes; its response keeps what came."""


def _pairs(headers: Any) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in headers.items()
        for value in values
        if name.decode("latin-1").lower() not in _PRIVATE_HEADERS
    ]


def exchange_of(response: Response, request: Request, *, limit: int | None = None) -> WireExchange:
    """The exchange as sent and received. With ``limit`` the body was cut: it keeps at most
    that many bytes and is marked truncated."""
    host = urlsplit(request.url).netloc
    request_headers = [("Host", host), *_pairs(request.headers)]
    body = response.body if limit is None else response.body[:limit]
    ctype = response.headers.get(b"Content-Type")
    ip = getattr(response, "ip_address", None)
    return WireExchange(
        url=request.url,
        method=request.method,
        request_headers=request_headers,
        request_body=request.body,
        status=response.status,
        protocol=getattr(response, "protocol", None) or "HTTP/1.1",
        headers=_pairs(response.headers),
        body=body,
        ip_address=str(ip) if ip is not None else None,
        truncated=limit is not None,
        content_type=ctype.decode("latin-1").split(";")[0].strip().lower() if ctype else None,
    )


class WireRecorder:
    """Puts each batch request's wire exchange on its page, and cuts oversized bodies."""

    def __init__(self, capture: BatchCapture, *, max_bytes: int) -> None:
        self.capture = capture
        self.max_bytes = max_bytes
        self._received: dict[int, int] = {}

    def connect(self, manager: SignalManager) -> None:
        manager.connect(self.on_downloaded, signal=signals.response_downloaded)
        manager.connect(self.on_headers, signal=signals.headers_received)
        manager.connect(self.on_bytes, signal=signals.bytes_received)

    def on_downloaded(self, response: Response, request: Request, spider: Any = None) -> None:
        page = self.capture.page_of(request)
        if page is not None:
            page.wire = exchange_of(response, request)
            if request.meta.pop(_LIFTED, False):
                # A body shorter than it said came whole: the limit holds again for decoding.
                del request.meta["download_maxsize"]

    def on_headers(
        self, headers: Any, body_length: int, request: Request, spider: Any = None
    ) -> None:
        """A declared length past the limit: Scrapy would drop the response unread, so its
        own limit is lifted for this transfer and ``on_bytes`` cuts the body at ours."""
        if body_length > self.max_bytes and self.capture.page_of(request) is not None:
            request.meta["download_maxsize"] = 0
            request.meta[_LIFTED] = True

    def on_bytes(self, data: bytes, request: Request, spider: Any = None) -> None:
        page = self.capture.page_of(request)
        if page is None:
            return
        received = self._received.get(id(page), 0) + len(data)
        self._received[id(page)] = received
        if received > self.max_bytes:
            raise Truncated(fail=True)

    def on_truncated(
        self, failure_value: Truncated, request: Request | None
    ) -> WireExchange | None:
        """The exchange of a response cut short, from the errback's failure."""
        response = failure_value.response
        if response is None or request is None:
            return None
        return exchange_of(response, request, limit=self.max_bytes)
