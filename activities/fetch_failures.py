"""A failed request's failure class: the short, stable name reports count and retries go by."""

from __future__ import annotations

from scrapy.core.downloader.handlers.http11 import TunnelError
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.utils._compression import _DecompressionMaxSizeExceeded
from twisted.internet import error as txerror
from twisted.web._newclient import ResponseNeverReceived

from shardcrawl.activities.address_guard import ForbiddenAddress
from shardcrawl.activities.wire_capture import Truncated
from shardcrawl.models import DEFERRED, FORBIDDEN_ADDRESS

__all__ = ["HeldByRetryAfter", "classify_failure"]


class HeldByRetryAfter(IgnoreRequest):
    """A request not sent because its host answered with a Retry-After in this batch."""


_FAILURE_CLASSES: list[tuple[tuple[type[BaseException], ...], str]] = [
    ((HeldByRetryAfter,), DEFERRED),
    ((Truncated,), "oversize"),
    ((ForbiddenAddress,), FORBIDDEN_ADDRESS),
    ((CannotResolveHostError, txerror.DNSLookupError), "dns"),
    ((DownloadConnectionRefusedError, txerror.ConnectionRefusedError), "connection_refused"),
    ((DownloadTimeoutError, txerror.TimeoutError, txerror.TCPTimedOutError), "timeout"),
    ((DownloadCancelledError,), "oversize"),
    ((ResponseDataLossError, ResponseNeverReceived, txerror.ConnectionLost), "connection_lost"),
    ((txerror.ConnectError,), "connection_error"),
    ((TunnelError,), "tunnel"),
    ((DownloadFailedError,), "download_failed"),
    ((IgnoreRequest,), "ignored"),
]


def classify_failure(exc: BaseException) -> str:
    """A short, stable failure class for reports and, later, retry decisions."""
    if isinstance(exc, IgnoreRequest) and isinstance(exc.__cause__, _DecompressionMaxSizeExceeded):
        return "oversize"  # a compressed body that expands past max_response_bytes
    for types, name in _FAILURE_CLASSES:
        if isinstance(exc, types):
            return name
    if "SSL" in type(exc).__name__ or "TLS" in type(exc).__name__:
        return "tls"
    return "error:" + type(exc).__name__
