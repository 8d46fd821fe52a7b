"""What a response says about the host's mood: is it a block, and when may we come back.

Pure, so that tests and the shard can apply the same rules the batch activity does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from shardcrawl.models import BlockSpec

__all__ = [
    "MARKER_SCAN_BYTES",
    "MAX_RETRY_AFTER_SECONDS",
    "block_reason",
    "holds_host",
    "retry_after_seconds",
]

# Body bytes searched for block markers, and the longest Retry-After honoured (a day).
MARKER_SCAN_BYTES = 32 * 1024
MAX_RETRY_AFTER_SECONDS = 86_400.0


def retry_after_seconds(value: bytes | None, *, now: datetime) -> float | None:
    """A Retry-After header (delta-seconds or an HTTP date) as seconds from ``now``, which the
    caller passes: workflows import this module, and must never read a wall clock."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isascii() and text.isdigit():  # not "²", which str.isdigit also takes
        return min(float(text), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - now).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER_SECONDS)


def block_reason(status: int, body: bytes, location: str | None, blocks: BlockSpec) -> str | None:
    """Why a response is a block, or None: a block status, a challenge redirect, or a marker
    in the start of the body."""
    if status in blocks.statuses:
        return f"status:{status}"
    if location and 300 <= status < 400:
        path = urlsplit(location).path
        for prefix in blocks.challenge_paths:
            if path.startswith(prefix):
                return f"challenge:{prefix}"
    if blocks.body_markers:
        head = body[:MARKER_SCAN_BYTES].decode("utf-8", "replace").lower()
        for marker in blocks.body_markers:
            if marker in head:
                return f"marker:{marker}"
    return None


def holds_host(status: int | None, blocked: str | None) -> bool:
    """Whether a Retry-After on this response holds its whole host: with a 429, a 5xx or a
    block (on a 3xx it is about the redirect, on a 200 it means nothing)."""
    return bool(blocked) or status == 429 or (status or 0) >= 500
