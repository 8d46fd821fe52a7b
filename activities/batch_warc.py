"""Which WARC record each page of a batch becomes, and what its page record says about it.

- A fresh response is a ``response`` record; the page record gets its ``payload_digest``.
- A 304 of an incremental crawl is a ``revisit`` (server-not-modified) pointing at the
  earlier capture: the previous record's URL and ``captured_at`` (or ``fetched_at``), with
  its payload digest when it has one. The page record is the previous one, carried over.
- With ``warc_dedup: digest``, a response whose payload has the previous capture's digest is
  an identical-payload-digest ``revisit``; the page record keeps the earlier ``captured_at``,
  so later revisits point at the record that holds the payload, not at a revisit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shardcrawl.activities.page_capture import PageCapture
from shardcrawl.activities.warc_writer import (
    IDENTICAL_PROFILE,
    NOT_MODIFIED_PROFILE,
    WarcFile,
    payload_digest,
)
from shardcrawl.models import CaptureOptions

__all__ = ["ArchivedBatch", "archive_pages"]


@dataclass
class ArchivedBatch:
    """The batch's WARC file, its index part, and the fields each page record gains."""

    data: bytes
    index: bytes
    fields: dict[int, dict[str, Any]] = field(default_factory=dict)


def _captured_at(record: dict[str, Any]) -> str:
    return str(record.get("captured_at") or record["fetched_at"])


def archive_pages(
    pages: dict[int, PageCapture],
    *,
    crawl_id: str,
    batch_id: str,
    options: CaptureOptions,
    previous_records: dict[str, dict[str, Any]],
) -> ArchivedBatch:
    """Every page given (by request index) with a wire exchange, in index order."""
    warc = WarcFile(filename=f"{batch_id}.warc.gz", crawl_id=crawl_id, info=options.warcinfo)
    fields: dict[int, dict[str, Any]] = {}
    for index in sorted(pages):
        page = pages[index]
        exchange = page.wire
        if exchange is None:
            continue
        when = datetime.fromtimestamp(page.fetched_at or 0.0, tz=UTC)
        earlier = previous_records.get(page.url)
        if exchange.status == 304 and earlier is not None:
            warc.revisit(
                exchange,
                when,
                profile=NOT_MODIFIED_PROFILE,
                refers_to_uri=earlier["url"],
                refers_to_date=_captured_at(earlier),
                digest=earlier.get("payload_digest"),
            )
            continue
        digest = None
        if options.warc_dedup == "digest" and earlier is not None and not exchange.truncated:
            digest = payload_digest(exchange.body)
        if digest is not None and earlier is not None and digest == earlier.get("payload_digest"):
            warc.revisit(
                exchange,
                when,
                profile=IDENTICAL_PROFILE,
                refers_to_uri=earlier["url"],
                refers_to_date=_captured_at(earlier),
                digest=digest,
            )
            fields[index] = {"payload_digest": digest, "captured_at": _captured_at(earlier)}
            continue
        fields[index] = {"payload_digest": warc.response(exchange, when)}
    data, index_part = warc.finish()
    return ArchivedBatch(data=data, index=index_part, fields=fields)
