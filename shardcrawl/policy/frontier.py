"""A shard's frontier and seen-set: what to fetch next, and what was already taken.

Plain and deterministic (the shard workflow holds one). Requests queue per origin, in the
crawl's order: ``breadth_first`` (shallowest first, then higher priority, then arrival),
``depth_first`` (deepest first, then higher priority, then the latest found, as Scrapy's
default LIFO queue) or ``priority`` (higher priority first, then shallowest, then arrival).
The seen-set holds 64-bit request fingerprints (Scrapy's identity: canonical URL, method,
body), never URLs; a request with ``dont_filter`` skips it, as in Scrapy. A request
rediscovered at a smaller depth while still queued moves up to that depth, so the depth limit
cuts the shortest path, not the first one found.
"""

from __future__ import annotations

import base64
import heapq
from collections.abc import Iterable
from typing import Any, Literal

from shardcrawl.core import urls
from shardcrawl.core.fingerprints import FingerprintSet
from shardcrawl.models import RequestData, UrlTask

__all__ = ["Frontier", "RecentSet", "fingerprint_of", "data_fingerprint", "unfiltered"]


# Heap entries are (order, order, order, key, depth), the three order keys as the crawl's order
# says; a queued request is (url, depth, priority, redirects, request). Plain tuples, not
# objects: a large frontier holds hundreds of thousands. The key is the request's fingerprint,
# or for a dont_filter request one past 64 bits (so it never meets a fingerprint): such a
# request is queued however often it comes. An entry whose depth is not its request's any more
# (found again shallower) is stale, and skipped.
_Entry = tuple[int, int, int, int, int]
Order = Literal["breadth_first", "depth_first", "priority"]
_Queued = tuple[str, int, int, int, RequestData | None]
_UNFILTERED = 1 << 64


class Frontier:
    """Per-origin queues plus the seen-set of everything ever queued."""

    def __init__(self, order: Order = "breadth_first") -> None:
        self._order = order
        self._queues: dict[str, list[_Entry]] = {}
        self._counts: dict[str, int] = {}
        self._pending: dict[int, _Queued] = {}
        self._seen = FingerprintSet()
        self._seq = 0

    def offer(self, task: UrlTask) -> bool:
        """Queue a request; False if it was seen before (a duplicate)."""
        fp = fingerprint_of(task)
        if unfiltered(task.request):
            # As Scrapy's scheduler: not looked up, and not recorded either, so a filtered
            # request for the same URL later still goes.
            self._queue(task, _UNFILTERED + self._seq)
            return True
        if not self._seen.add(fp):
            queued = self._pending.get(fp)
            if queued is not None and task.depth < queued[1]:
                self._pending[fp] = _queued(task)
                self._push(task, fp)
            return False
        self._queue(task, fp)
        return True

    def update_queued(self, task: UrlTask) -> bool:
        """Give a request still queued the rest of ``task`` (a sitemap's fields for a URL the
        previous crawl queued first), at the queued depth; False if it is not queued."""
        fp = fingerprint_of(task)
        queued = self._pending.get(fp)
        if queued is None:
            return False
        url, depth, priority, redirects, _ = queued
        self._pending[fp] = (url, depth, priority, redirects, task.request)
        return True

    def mark_seen(self, task: UrlTask) -> bool:
        """Record a request as seen without queueing it (one the crawl will not fetch, such
        as a host's past its quota); False if it was seen before."""
        return unfiltered(task.request) or self._seen.add(fingerprint_of(task))

    def _queue(self, task: UrlTask, fp: int) -> None:
        self._pending[fp] = _queued(task)
        self._push(task, fp)
        origin = urls.origin(task.url)
        self._counts[origin] = self._counts.get(origin, 0) + 1

    def pop(self, origin: str, count: int, max_url_bytes: int | None = None) -> list[UrlTask]:
        """Up to ``count`` URLs of one origin, shallowest first, and (if given) no more than
        ``max_url_bytes`` of URL text beyond the first, so a batch always fits one payload."""
        heap = self._queues.get(origin, [])
        out: list[UrlTask] = []
        size = 0
        while heap and len(out) < count:
            *_, fp, depth = heap[0]
            queued = self._pending.get(fp)
            if queued is None or queued[1] != depth:
                heapq.heappop(heap)
                continue
            size += len(queued[0])
            if out and max_url_bytes is not None and size > max_url_bytes:
                break
            heapq.heappop(heap)
            del self._pending[fp]
            url, depth, priority, redirects, request = queued
            out.append(
                UrlTask(
                    url=url, depth=depth, priority=priority, redirects=redirects, request=request
                )
            )
        if out:
            self._counts[origin] -= len(out)
        if not self._live(origin):
            self._queues.pop(origin, None)
            self._counts.pop(origin, None)
        return out

    def requeue(self, task: UrlTask) -> None:
        """Queue again a URL taken for a batch that did not run to the end (the store was
        down, or the crawl cancelled it): it is in the seen-set already, not a new URL."""
        fp = fingerprint_of(task)
        if unfiltered(task.request):
            self._queue(task, _UNFILTERED + self._seq)
        elif fp not in self._pending:
            self._queue(task, fp)

    def origins(self) -> list[str]:
        """Origins with queued URLs, the one whose next request comes first in crawl order
        first."""
        live = [o for o in list(self._queues) if self._live(o)]
        return sorted(live, key=lambda o: self._queues[o][0])

    def order_key(self, origin: str) -> tuple[int, int, int] | None:
        """Where the origin's next request stands in crawl order, None if it has none
        queued; the shard dispatches origins in this order."""
        if not self._live(origin):
            return None
        first, second, third, _, _ = self._queues[origin][0]
        return first, second, third

    def queued(self) -> int:
        return len(self._pending)

    def queued_at(self, origin: str) -> int:
        return self._counts.get(origin, 0)

    def seen_count(self) -> int:
        return len(self._seen)

    def seen_bytes(self) -> bytes:
        return self._seen.to_bytes()

    def seen_memory_bytes(self) -> int:
        return self._seen.memory_bytes()

    def export(self) -> list[list[Any]]:
        """What is queued, in arrival order per origin, as compact records for a checkpoint."""
        records = []
        for heap in self._queues.values():
            # In arrival order (the third key is the arrival number, negated for
            # depth_first): restored in that order, requests keep their order.
            for *_, fp, depth in sorted(heap, key=lambda entry: abs(entry[2])):
                queued = self._pending.get(fp)
                if queued is not None and queued[1] == depth:
                    url, depth, priority, redirects, request = queued
                    record: list[Any] = [url, depth, priority, redirects]
                    if request is not None:
                        record.append(request.model_dump(mode="json", exclude_defaults=True))
                    records.append(record)
        return records

    def restore_seen(self, data: bytes) -> None:
        """Load a ``seen_bytes`` dump (whole: one merge, not one per segment)."""
        self._seen.update_from_bytes(data)

    def restore_queued(self, records: Iterable[list[Any]]) -> None:
        """Queue ``export`` records again; their URLs are already in the restored seen-set."""
        for url, depth, priority, redirects, *request in records:
            task = UrlTask(
                url=url,
                depth=depth,
                priority=priority,
                redirects=redirects,
                request=RequestData.model_validate(request[0]) if request else None,
            )
            self.requeue(task)

    def _push(self, task: UrlTask, fp: int) -> None:
        self._seq += 1
        origin = urls.origin(task.url)
        depth, priority, seq = task.depth, task.priority, self._seq
        if self._order == "breadth_first":
            entry = (depth, -priority, seq, fp, depth)
        elif self._order == "depth_first":
            entry = (-depth, -priority, -seq, fp, depth)
        else:
            entry = (-priority, depth, seq, fp, depth)
        heapq.heappush(self._queues.setdefault(origin, []), entry)

    def _is_current(self, entry: _Entry) -> bool:
        queued = self._pending.get(entry[3])
        return queued is not None and queued[1] == entry[4]

    def _live(self, origin: str) -> bool:
        heap = self._queues.get(origin)
        while heap and not self._is_current(heap[0]):
            heapq.heappop(heap)
        return bool(heap)


def _queued(task: UrlTask) -> _Queued:
    return (task.url, task.depth, task.priority, task.redirects, task.request)


def fingerprint_of(task: UrlTask) -> int:
    """The request's identity for dedup (Scrapy's: URL, method, body; not the callback)."""
    return data_fingerprint(task.url, task.request)


def data_fingerprint(url: str, request: RequestData | None) -> int:
    """``fingerprint_of`` for a canonical URL and the rest of its request (a ``RequestData``)."""
    if request is None:
        return urls.fingerprint(url)
    return urls.request_fingerprint(
        url, request.method, base64.b64decode(request.body_b64) if request.body_b64 else b""
    )


def unfiltered(request: RequestData | None) -> bool:
    """Whether the request skips dedup (Scrapy's ``dont_filter``)."""
    return request is not None and request.dont_filter


class RecentSet:
    """Bounded memory of request fingerprints with the smallest depth seen, forgetting everything
    when full.

    For optimisations that may forget (forgetting costs a redundant message, never a URL), with
    memory fixed at ``capacity`` entries.
    """

    def __init__(self, *, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._depths: dict[int, int] = {}

    def add(self, task: UrlTask) -> bool:
        """Remember the request at its depth; False if it was remembered at this depth or
        smaller (a dont_filter request is never remembered: it goes every time)."""
        if unfiltered(task.request):
            return True
        fp, depth = fingerprint_of(task), task.depth
        known = self._depths.get(fp)
        if known is not None and known <= depth:
            return False
        if known is None and len(self._depths) >= self.capacity:
            self._depths.clear()
        self._depths[fp] = depth
        return True

    def __len__(self) -> int:
        return len(self._depths)
