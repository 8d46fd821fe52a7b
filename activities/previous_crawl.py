"""An incremental crawl reads its previous crawl's output: nothing else is kept for it.

The previous crawl's item records are the validator store. Each record has the page's
``etag``, ``last_modified`` and ``content_hash``, and records sit per origin under
``PREV/items/ORIGIN/``. So:

- ``index_previous_crawl`` (from ``prepare_crawl``) lists the previous crawl's item files once and
  writes, per shard, the files of the origins that shard owns (``ID/state/previous-crawl/``).
- ``previous_crawl_urls`` reads a shard's files a page at a time. The shard queues their URLs (those
  that answered below 400 then) so every page is asked for again, unchanged ones included.
- ``PreviousCrawlRecords`` gives a batch its origin's previous records. It reads them once per
  worker and keeps ``capacity`` origins. A batch turns a record's validators into
  ``If-None-Match`` and ``If-Modified-Since``, and carries the record over on a 304.

What a worker holds is one origin's records, for the origins it is crawling now. The store
holds nothing beyond the crawls' own output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from shardcrawl.activities.lru import Lru
from shardcrawl.activities.stores import StoreCache
from shardcrawl.core import layout, urls
from shardcrawl.models import (
    PageChange,
    PrepareRequest,
    PrepareResult,
    PreviousCrawlPage,
    PreviousCrawlRequest,
    UrlTask,
)

__all__ = [
    "PreviousCrawlActivities",
    "PreviousCrawlRecords",
    "change_of",
    "conditions",
    "index_previous_crawl",
    "records_of",
]

PAGE_URL_BYTES = 90_000  # URL text per previous_crawl_urls page: one small payload


def records_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


async def index_previous_crawl(stores: StoreCache, request: PrepareRequest) -> PrepareResult:
    """The previous crawl (named, or the schedule's last completed run) and, per shard, the
    item files of the origins it owns, written to the store for ``previous_crawl_urls``."""
    previous = request.previous_crawl
    if previous is None and request.incremental and request.schedule:
        pointer = await stores.get_bytes(
            request.output, layout.schedule_pointer_key(request.schedule)
        )
        previous = json.loads(pointer)["crawl_id"] if pointer else None
    if previous is None:
        return PrepareResult()
    if previous == request.crawl_id:
        raise ApplicationError(
            f"previous_crawl {previous!r} is this crawl",
            type="InvalidCrawlSpec",
            non_retryable=True,
        )
    prefix = layout.items_prefix(previous)
    keys = await stores.list_keys(request.output, prefix)
    if not keys:
        raise ApplicationError(
            f"previous_crawl {previous!r} has no pages in {request.output}",
            type="PreviousCrawlNotFound",
            non_retryable=True,
        )
    per_shard: list[list[str]] = [[] for _ in range(request.shard_count)]
    for key in keys:
        origin = urls.origin_from_key(key[len(prefix) :].split("/", 1)[0])
        per_shard[urls.shard_of(origin, request.shard_count)].append(key)
    for shard, files in enumerate(per_shard):
        body = json.dumps(files).encode()
        await stores.put(
            request.output, layout.previous_crawl_index_key(request.crawl_id, shard), body
        )
    return PrepareResult(previous_crawl=previous, previous_crawl_files=[len(f) for f in per_shard])


def conditions(previous: dict[str, dict[str, Any]], urls_: list[str]) -> dict[str, dict[str, str]]:
    """Headers that make each URL's request conditional on the validators it had."""
    out = {}
    for url in urls_:
        record = previous.get(url, {})
        headers = {}
        if record.get("etag"):
            headers["If-None-Match"] = record["etag"]
        if record.get("last_modified"):
            headers["If-Modified-Since"] = record["last_modified"]
        if headers:
            out[url] = headers
    return out


def _moment(text: str) -> datetime | None:
    """A W3C datetime as sitemaps write it (a date, or a time with a zone), in UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def not_newer_than(lastmod: str | None, previous: dict[str, Any]) -> bool:
    """Whether a sitemap's ``lastmod`` for a page is no later than the previous crawl's fetch
    (or check) of it: then the page is carried over without a request."""
    if lastmod is None:
        return False
    changed = _moment(lastmod)
    seen = previous.get("checked_at") or previous.get("fetched_at")
    fetched = _moment(seen) if isinstance(seen, str) else None
    return changed is not None and fetched is not None and changed <= fetched


def change_of(status: int, content_hash: str | None, previous: dict[str, Any] | None) -> PageChange:
    """new, changed, unchanged (a 304, or the same content again) or gone (404, 410)."""
    if previous is None:
        return "new"
    if status == 304:
        return "unchanged"
    if status in (404, 410):
        return "gone"
    same = content_hash is not None and content_hash == previous.get("content_hash")
    return "unchanged" if same and status == previous.get("status") else "changed"


class PreviousCrawlRecords:
    """The previous crawl's records of an origin, by URL, for the most recent origins."""

    def __init__(self, stores: StoreCache, *, capacity: int = 32) -> None:
        self._stores = stores
        self._origins: Lru[tuple[str, str, str], dict[str, dict[str, Any]]] = Lru(capacity)

    async def of(self, output: str, previous: str, origin: str) -> dict[str, dict[str, Any]]:
        cached = self._origins.get((output, previous, origin))
        if cached is not None:
            return cached
        records = {}
        for key in await self._stores.list_keys(
            output, layout.origin_items_prefix(previous, origin)
        ):
            for record in records_of(await self._stores.get_bytes(output, key) or b""):
                if record.get("status") is not None:  # a page that answered, not a failure
                    records[record["url"]] = record
        return self._origins.put((output, previous, origin), records)


class PreviousCrawlActivities:
    def __init__(self, *, stores: StoreCache, capacity: int = 16) -> None:
        self._stores = stores
        # A shard pages through its index: read it once per worker, not once per page.
        self._indexes: Lru[tuple[str, str], list[str]] = Lru(capacity)

    async def _index(self, output: str, key: str) -> list[str]:
        files = self._indexes.get((output, key))
        if files is None:
            data = await self._stores.get_bytes(output, key) or b"[]"
            files = self._indexes.put((output, key), json.loads(data))
        return files

    @activity.defn(name="previous_crawl_urls")
    async def previous_crawl_urls(self, request: PreviousCrawlRequest) -> PreviousCrawlPage:
        """The URLs of the shard's previous item files from ``start`` on, a page's worth."""
        files = await self._index(
            request.output, layout.previous_crawl_index_key(request.crawl_id, request.shard)
        )
        tasks: list[UrlTask] = []
        size = 0
        at = request.start
        while at < len(files) and size < PAGE_URL_BYTES:
            data = await self._stores.get_bytes(request.output, files[at]) or b""
            for record in records_of(data):
                # A page gone then (404, 410) is not asked for again.
                status = record.get("status")
                if status is not None and status < 400:
                    tasks.append(UrlTask(url=record["url"], depth=record.get("depth", 0)))
                    size += len(record["url"])
            at += 1
        return PreviousCrawlPage(urls=tasks, next=at)
