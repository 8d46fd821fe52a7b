"""``shardcrawl export``: a crawl's records, merged from its item files into one JSONL or CSV
file, one item file in memory at a time, so a crawl of any size exports in bounded memory.

JSONL keeps each record's line as the crawl wrote it. CSV has a row per item, as a Scrapy
feed does (``rows``), and needs its columns before the first row; spiders add fields of their
own, so it reads the item files twice: once for the columns (the record's own fields first,
then the items' as they first appear), once for the rows. Values that are lists or objects
are JSON in their cell.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from typing import Any, Literal, TextIO

from shardcrawl.core import layout
from shardcrawl.store import Store

__all__ = ["FIRST_COLUMNS", "FORMATS", "export", "item_keys", "records", "rows"]

FORMATS = ("jsonl", "csv")
FIRST_COLUMNS = (
    "url",
    "status",
    "error",
    "attempts",
    "depth",
    "fetched_at",
    "content_type",
    "size_bytes",
    "redirect_to",
    "title",
)
"""The record's own fields, in the order a person reads them; others follow."""


def item_keys(store: Store, crawl_id: str) -> list[str]:
    """The crawl's item files, in a stable order (origin, then batch)."""
    prefix = layout.items_prefix(crawl_id)
    return [k for k in store.list_keys(prefix) if k.endswith((".jsonl", ".jsonl.gz"))]


def _lines(store: Store, key: str) -> Iterator[bytes]:
    data = store.get_bytes(key)
    if data is None:
        return  # gone since it was listed: a retried batch replaced it, or a cleanup
    if key.endswith(".gz"):
        data = gzip.decompress(data)
    for line in data.splitlines():
        if line.strip():
            yield line


def records(store: Store, keys: list[str]) -> Iterator[dict[str, Any]]:
    for key in keys:
        for line in _lines(store, key):
            yield json.loads(line)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rows(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A record as CSV rows, one per item the spider yielded (as a Scrapy feed has), each
    with the record's own fields; a record with no item is one row. An item's field named
    like one of the record's is ``item_NAME``."""
    own = {k: v for k, v in record.items() if k != "items"}
    items = [i for i in record.get("items") or [] if isinstance(i, dict)]
    if not items:
        yield own
    for item in items:
        yield {**own, **{(f"item_{k}" if k in own else k): v for k, v in item.items()}}


def _columns(store: Store, keys: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records(store, keys):
        for row in rows(record):
            seen.update(dict.fromkeys(row))
    return [c for c in FIRST_COLUMNS if c in seen] + [c for c in seen if c not in FIRST_COLUMNS]


def export(store: Store, crawl_id: str, out: TextIO, *, format: Literal["jsonl", "csv"]) -> int:
    """Write the crawl's records to ``out``; the number of records written (a record may be
    several CSV rows, one per item)."""
    keys = item_keys(store, crawl_id)
    count = 0
    if format == "jsonl":
        for key in keys:
            for line in _lines(store, key):
                out.write(line.decode("utf-8"))
                out.write("\n")
                count += 1
        return count
    columns = _columns(store, keys)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records(store, keys):
        for row in rows(record):
            writer.writerow([_cell(row.get(column)) for column in columns])
        count += 1
    return count
