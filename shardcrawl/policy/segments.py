"""Claim-check segments: large workflow state cut into store objects that each fit a payload.

A shard's seen-set, frontier and per-host counters grow with the crawl, but every payload in
Temporal history must stay small (we hold them under ``SEGMENT_BYTES`` raw, which base64 and
JSON framing keep under 256 KB). So state that would outgrow a payload travels to and from the
store in segments, and history holds only their keys. Pure: the workflow packs, an activity
writes; an activity reads, the workflow unpacks.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from shardcrawl.core.fingerprints import FINGERPRINT_BYTES
from shardcrawl.models import FetchOutcome, Link

__all__ = [
    "INLINE_PAYLOAD_BYTES",
    "SEGMENT_BYTES",
    "pack_batch_result",
    "pack_fingerprints",
    "pack_records",
    "unpack_batch_result",
    "unpack_records",
]

SEGMENT_BYTES = 150_000
"""Most raw bytes in one segment: base64 makes it 200 KB, under the 256 KB payload ceiling."""

INLINE_PAYLOAD_BYTES = 200_000
"""A message larger than this as JSON travels as segments instead (or is split, for lists)."""

# Records are packed into raw chunks of about this size before compression; a chunk whose
# compressed size still exceeds SEGMENT_BYTES is split in half until it fits.
_RAW_CHUNK = 4 * SEGMENT_BYTES


def pack_fingerprints(data: bytes) -> list[bytes]:
    """Cut a ``FingerprintSet.to_bytes()`` dump at 8-byte bounds (random bits: no compression)."""
    step = SEGMENT_BYTES - SEGMENT_BYTES % FINGERPRINT_BYTES
    return [data[i : i + step] for i in range(0, len(data), step)]


def pack_records(records: Iterable[Any]) -> Iterator[bytes]:
    """JSON-serializable records as zlib-compressed JSON lines, each segment <= SEGMENT_BYTES.

    A generator, so that a workflow can store each segment before packing the next (a workflow
    task that computes for seconds without yielding is taken for a deadlock)."""
    chunk: list[bytes] = []
    size = 0
    for record in records:
        line = json.dumps(record, separators=(",", ":"), sort_keys=True).encode() + b"\n"
        if len(line) > SEGMENT_BYTES:
            raise ValueError(f"a record of {len(line)} bytes does not fit one segment")
        if chunk and size + len(line) > _RAW_CHUNK:
            yield from _compress(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        yield from _compress(chunk)


def _compress(lines: list[bytes]) -> Iterator[bytes]:
    packed = zlib.compress(b"".join(lines), 6)
    if len(packed) <= SEGMENT_BYTES or len(lines) == 1:
        yield packed
        return
    half = len(lines) // 2
    yield from _compress(lines[:half])
    yield from _compress(lines[half:])


def unpack_records(segment: bytes) -> list[Any]:
    return [json.loads(line) for line in zlib.decompress(segment).splitlines()]


def pack_batch_result(outcomes: list[FetchOutcome], links: list[Link]) -> list[bytes]:
    records: list[Any] = [["o", o.model_dump(mode="json", exclude_none=True)] for o in outcomes]
    records += [
        ["l", link.model_dump(mode="json", exclude_defaults=True)]
        if link.request is not None or link.priority
        else ["l", link.url, link.depth, link.count]
        for link in links
    ]
    return list(pack_records(records))


def unpack_batch_result(segments: list[bytes]) -> tuple[list[FetchOutcome], list[Link]]:
    outcomes: list[FetchOutcome] = []
    links: list[Link] = []
    for segment in segments:
        for record in unpack_records(segment):
            if record[0] == "o":
                outcomes.append(FetchOutcome.model_validate(record[1]))
            elif len(record) == 2:
                links.append(Link.model_validate(record[1]))
            else:
                links.append(Link(url=record[1], depth=record[2], count=record[3]))
    return outcomes, links
