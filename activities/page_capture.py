"""What one batch request produced: the records the capture fills in and activities read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shardcrawl.models import RequestData

if TYPE_CHECKING:
    from shardcrawl.activities.warc_writer import WireExchange

__all__ = ["FoundRequest", "PageCapture"]


@dataclass(frozen=True)
class FoundRequest:
    """A request a spider yielded: where it goes, and (if not a plain GET to ``parse``) the
    rest of it."""

    url: str
    priority: int = 0
    request: RequestData | None = None


@dataclass
class PageCapture:
    """What one batch request produced."""

    url: str
    depth: int
    errback: str | None = None
    status: int | None = None
    error: str | None = None
    fetched_at: float | None = None
    content_type: str | None = None
    location: str | None = None
    size_bytes: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    links: list[FoundRequest] = field(default_factory=list)
    body: bytes | None = None
    blocked: str | None = None
    retry_after: float | None = None
    judged: bool = False
    proxy: str | None = None
    latency_ms: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    wire: WireExchange | None = None
    """The exchange as it went over the wire, when the batch archives (WARC)."""
    spider_error: str | None = None
    """``Type: message`` of the first exception a callback raised on the page."""
