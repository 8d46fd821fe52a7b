"""The crawl_batch activity: fetch exactly a batch's URLs with Scrapy, store the pages' records,
return their metadata and the links found, never the bodies."""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from shardcrawl.activities.attempt_check import ensure_current_attempt
from shardcrawl.activities.batch_capture import (
    CAPTURE_ARG,
    PROXY_AUTH_REFUSED,
    PROXY_ERROR,
    BatchCapture,
)
from shardcrawl.activities.batch_warc import archive_pages
from shardcrawl.activities.fetch_options import SharedFetchOptions
from shardcrawl.activities.metrics import record_batch
from shardcrawl.activities.page_capture import PageCapture
from shardcrawl.activities.previous_crawl import (
    PreviousCrawlRecords,
    change_of,
    conditions,
    not_newer_than,
)
from shardcrawl.activities.proxy_assign import proxy_slots
from shardcrawl.activities.robots import RobotsRules
from shardcrawl.activities.scrapy_runtime import (
    CrawlerStartError,
    ScrapyRuntime,
    UnknownSpiderError,
)
from shardcrawl.activities.scrapy_settings import batch_settings
from shardcrawl.activities.stores import StoreCache
from shardcrawl.core import layout, urls
from shardcrawl.models import (
    DEFERRED,
    NOT_FETCHED,
    REQUEST_NOT_TRANSFERABLE,
    ROBOTS_DISALLOWED,
    SITEMAP_META,
    SPIDER_START_FAILED,
    BatchRequest,
    BatchResult,
    BatchSlice,
    FetchOutcome,
    Link,
    PageChange,
    UrlTask,
    payload_bytes,
)
from shardcrawl.models.records import failure_record
from shardcrawl.policy.frontier import data_fingerprint, unfiltered
from shardcrawl.policy.retry_policy import will_retry
from shardcrawl.policy.segments import INLINE_PAYLOAD_BYTES, pack_batch_result

__all__ = ["BatchActivities", "page_record"]


def _timestamp(at: float | None) -> str:
    moment = datetime.fromtimestamp(at or 0.0, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def page_record(page: PageCapture) -> dict[str, Any]:
    """One output line: the page's fields, then ``items``, everything the spider yielded for
    it, in order (a list, empty if nothing): one shape whatever the spider yields."""
    record: dict[str, Any] = {
        "url": page.url,
        "status": page.status,
        "depth": page.depth,
        "fetched_at": _timestamp(page.fetched_at),
        "content_type": page.content_type,
        "size_bytes": page.size_bytes,
    }
    if page.location:
        record["redirect_to"] = page.location
    for name in ("etag", "last_modified", "content_hash"):
        if getattr(page, name):
            record[name] = getattr(page, name)
    record["items"] = page.items
    return record


# The same hrefs recur on page after page (navigation, popular pages): canonicalizing each
# once per worker saves most of the link-handling CPU. Bounded, so memory stays fixed.
_canonical = functools.lru_cache(maxsize=1 << 16)(urls.canonicalize)


def _links(pages: list[PageCapture], strip: tuple[str, ...] = ()) -> list[Link]:
    """The crawlable requests the batch's spider yielded, at canonical URLs, each once (by
    Scrapy's identity: URL, method, body; the first one yielded wins) at its smallest depth,
    with how many times the pages yielded it (so the shard counts every duplicate). A
    ``dont_filter`` request is never merged with another."""
    links: dict[object, Link] = {}
    for page in pages:
        depth = page.depth + 1
        for found in page.links:
            canonical = _canonical(found.url, strip)
            if canonical is None:
                continue
            # The frontier's identity, so the batch merges exactly what the shard would.
            key: object = (
                ("unfiltered", len(links))
                if unfiltered(found.request)
                else data_fingerprint(canonical, found.request)
            )
            link = links.get(key)
            if link is None:
                links[key] = Link(
                    url=canonical, depth=depth, priority=found.priority, request=found.request
                )
            else:
                link.count += 1
                link.depth = min(link.depth, depth)
    return list(links.values())


def _outcome(
    page: PageCapture,
    task: int,
    attempt: int,
    change: PageChange | None = None,
    *,
    strip: tuple[str, ...] = (),
) -> FetchOutcome:
    redirect = _canonical(page.location, strip) if page.location else None
    return FetchOutcome(
        url=page.url,
        task=task,
        status=page.status,
        error=page.error if page.status is None else None,
        redirect_to=redirect,
        content_type=page.content_type,
        attempt=attempt,
        blocked=page.blocked,
        retry_after_seconds=page.retry_after,
        proxy=page.proxy,
        latency_ms=page.latency_ms,
        change=change,
        spider_error=page.spider_error.split(":", 1)[0] if page.spider_error else None,
    )


def _sitemap_lastmod(task: UrlTask) -> str | None:
    meta = task.request.meta if task.request is not None else {}
    lastmod = meta.get(SITEMAP_META, {}).get("lastmod")
    return lastmod if isinstance(lastmod, str) else None


def _sitemap_fields(task: UrlTask) -> dict[str, Any]:
    """What the sitemap that listed the page said of it (``sitemap_lastmod``, ...)."""
    meta = task.request.meta if task.request is not None else {}
    return {f"sitemap_{k}": v for k, v in meta.get(SITEMAP_META, {}).items()}


def _record(
    page: PageCapture,
    change: PageChange | None,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """The page's record; in an incremental crawl, marked with its change, and a 304's is the
    previous record carried over (the page was not fetched again), marked when checked."""
    if change is None:
        return page_record(page)
    if page.status == 304 and previous is not None:
        checked_at = page_record(page)["fetched_at"]
        return {**previous, "recrawl": change, "checked_at": checked_at}
    return {**page_record(page), "recrawl": change}


class BatchActivities:
    def __init__(
        self,
        *,
        runtime: ScrapyRuntime,
        stores: StoreCache,
        robots: RobotsRules,
        previous_crawl: PreviousCrawlRecords,
        fetch_options: SharedFetchOptions,
    ) -> None:
        self._runtime = runtime
        self._stores = stores
        self._robots = robots
        self._previous_crawl = previous_crawl
        self._fetch_options = fetch_options

    @activity.defn(name="crawl_batch")
    async def crawl_batch(self, request: BatchRequest) -> BatchResult:
        started = time.monotonic()
        request = await self._fetch_options.resolve(request)
        try:
            spidercls = self._runtime.spider_class(request.spider)
        except UnknownSpiderError as exc:
            raise ApplicationError(str(exc), type="UnknownSpider", non_retryable=True) from exc
        refused: dict[int, str] = {}
        fetched: list[int] = []  # indexes in request.urls of the requests that go out
        previous_records: dict[str, dict[str, Any]] = {}
        carried: dict[int, dict[str, Any]] = {}  # unchanged per its sitemap: not asked
        for part, indexes in request.sliced():
            if request.previous_crawl:
                previous_records.update(
                    await self._previous_crawl.of(
                        request.output, request.previous_crawl, part.origin
                    )
                )
            # Addresses are judged inside Scrapy, where they are resolved once and connected
            # to (activities/address_guard.py).
            for index in indexes:
                task = request.urls[index]
                reason = await self._robots_refusal(request, part, task)
                earlier = previous_records.get(task.url)
                if reason:
                    refused[index] = reason
                elif earlier is not None and not_newer_than(_sitemap_lastmod(task), earlier):
                    carried[index] = earlier
                else:
                    fetched.append(index)
        to_fetch = [request.urls[i] for i in fetched]

        options = request.fetch.capture
        capture = BatchCapture(
            to_fetch,
            keep_bodies=options.store_bodies,
            wire_limit=request.fetch.max_response_bytes if options.warc else None,
            blocks=request.fetch.blocks,
            proxies=proxy_slots({urls.hostname(p.origin): p.proxies for p in request.slices}),
            conditions=conditions(previous_records, [t.url for t in to_fetch]),
        )
        if to_fetch:
            settings = batch_settings(
                request,
                reactor=self._runtime.reactor(),
                bind_address=self._runtime.bind_address,
            )
            try:
                await self._runtime.crawl(
                    spidercls,
                    settings,
                    spider_kwargs={CAPTURE_ARG: capture},
                    heartbeat=lambda: activity.heartbeat(request.batch_id),
                )
            except CrawlerStartError as exc:
                raise ApplicationError(
                    f"spider {request.spider!r} cannot run: {exc}",
                    type=SPIDER_START_FAILED,
                    non_retryable=True,
                ) from exc
        if capture.problem:
            raise ApplicationError(
                capture.problem, type=REQUEST_NOT_TRANSFERABLE, non_retryable=True
            )
        pages = dict(zip(fetched, capture.pages, strict=True))
        strip = request.fetch.strip_query_params
        for page in pages.values():
            if page.status is None and page.error is None:
                page.error = NOT_FETCHED

        outcomes = [
            FetchOutcome(
                url=request.urls[i].url, task=i, error=why, attempt=request.urls[i].attempt
            )
            for i, why in refused.items()
        ]
        outcomes += [
            FetchOutcome(
                url=request.urls[i].url,
                task=i,
                status=earlier.get("status"),
                attempt=request.urls[i].attempt,
                change="unchanged",
                carried=True,
            )
            for i, earlier in carried.items()
        ]
        changes = {
            i: change_of(p.status, p.content_hash, previous_records.get(p.url))
            for i, p in pages.items()
            if request.previous_crawl and p.status is not None
        }
        outcomes += [
            _outcome(p, i, request.urls[i].attempt, changes.get(i), strip=strip)
            for i, p in pages.items()
        ]
        # A response the shard will try again leaves no record: the request's last attempt
        # writes it, so each request is in the output (and the archive) once. So does a
        # request never sent because its host's Retry-After stopped the batch.
        retried = {
            o.task for o in outcomes if o.error == DEFERRED or will_retry(o, request.fetch.retry)
        }
        kept = {i: p for i, p in pages.items() if i not in retried}
        archived = (
            archive_pages(
                # A proxy's own answer (a 407, its 502) is not the target's: never archived.
                {i: p for i, p in kept.items() if p.error not in (PROXY_AUTH_REFUSED, PROXY_ERROR)},
                crawl_id=request.crawl_id,
                batch_id=request.batch_id,
                options=options,
                previous_records=previous_records,
            )
            if options.warc
            else None
        )
        # One items file per origin of the batch, as the previous crawl's index expects.
        lines: dict[str, list[str]] = {}
        bodies: dict[str, list[bytes]] = {}
        written = 0
        for part, indexes in request.sliced():
            origin_lines = lines.setdefault(part.origin, [])
            origin_bodies = bodies.setdefault(part.origin, [])
            at = 0
            for i in indexes:
                task = request.urls[i]
                found = kept.get(i)
                if i in refused:
                    record = failure_record(task, refused[i], attempts=task.attempt - 1)
                elif i in carried:
                    checked_at = _timestamp(time.time())
                    record = {**carried[i], "recrawl": "unchanged", "checked_at": checked_at}
                    record["carried_by"] = "sitemap_lastmod"
                elif found is None:
                    continue
                elif found.status is None:
                    record = failure_record(task, found.error, attempts=task.attempt)
                    record["items"] = found.items
                    record["fetched_at"] = _timestamp(found.fetched_at)
                else:
                    record = _record(found, changes.get(i), previous_records.get(found.url))
                    record["attempts"] = task.attempt
                if found is not None and found.spider_error:
                    record["spider_error"] = found.spider_error
                record.update(_sitemap_fields(task))
                if archived is not None:
                    record.update(archived.fields.get(i, {}))
                if found is not None and found.body:
                    key = layout.bodies_key(request.crawl_id, part.origin, request.batch_id)
                    record["body"] = {"key": key, "offset": at, "length": len(found.body)}
                    origin_bodies.append(found.body)
                    at += len(found.body)
                origin_lines.append(json.dumps(record, ensure_ascii=False, default=str) + "\n")
                written += 1
        result = BatchResult(
            batch_id=request.batch_id,
            outcomes=outcomes,
            links=_links(list(pages.values()), strip),
            items_written=written,
            attempt=activity.info().attempt,
        )
        # Only the attempt Temporal still waits for writes: a worker cut off from it may
        # have had this batch re-run elsewhere, and must not replace that run's files.
        await ensure_current_attempt()
        spilled = await self._spill_if_large(request, result)
        # Every file below is named by the batch, so this attempt replaces what an earlier
        # one wrote. The archive and bodies first, the items last: once the items are
        # written, nothing else can fail this attempt.
        if archived is not None:
            await self._stores.put(
                request.output, layout.warc_key(request.crawl_id, request.batch_id), archived.data
            )
            await self._stores.put(
                request.output,
                layout.warc_index_part_key(request.crawl_id, request.batch_id),
                archived.index,
            )
        if options.store_bodies:
            for origin, chunks in bodies.items():
                key = layout.bodies_key(request.crawl_id, origin, request.batch_id)
                await self._stores.put(request.output, key, b"".join(chunks))
        # Every origin's items file is written, empty too, so that it replaces what an
        # earlier attempt of this batch wrote (a record of a response this attempt retries).
        for origin, origin_lines in lines.items():
            key = layout.items_key(request.crawl_id, origin, request.batch_id)
            await self._stores.put(request.output, key, "".join(origin_lines).encode("utf-8"))
        record_batch(request, result, time.monotonic() - started)
        return spilled

    async def _spill_if_large(self, request: BatchRequest, result: BatchResult) -> BatchResult:
        """A result too large for one payload (many links per page) goes to the store in
        segments that the shard reads back one payload at a time."""
        if payload_bytes(result) <= INLINE_PAYLOAD_BYTES:
            return result
        keys = []
        for part, segment in enumerate(pack_batch_result(result.outcomes, result.links)):
            key = layout.batch_segment_key(request.crawl_id, request.batch_id, part)
            await self._stores.put(request.output, key, segment)
            keys.append(key)
        return result.model_copy(update={"outcomes": [], "links": [], "segments": keys})

    async def _robots_refusal(
        self, request: BatchRequest, part: BatchSlice, task: UrlTask
    ) -> str | None:
        if part.robots_disallow_all:
            return ROBOTS_DISALLOWED
        if part.robots_key and not await self._robots.allows(
            request.output, part.robots_key, task.url, request.fetch.user_agent
        ):
            return ROBOTS_DISALLOWED
        return None
