"""URLs waiting to be tried again, per origin, each with the workflow time it may go out.

Plain and deterministic (the shard holds one). A retry spends no new page credit: its URL
was counted when it first went out.
"""

from __future__ import annotations

import heapq
from typing import Any

from shardcrawl.core import urls
from shardcrawl.models import RequestData, UrlTask

__all__ = ["RetryQueue"]


class RetryQueue:
    def __init__(self) -> None:
        self._queues: dict[str, list[tuple[float, int, UrlTask]]] = {}
        self._seq = 0
        self._size = 0

    def push(self, task: UrlTask, ready_at: float) -> None:
        self._seq += 1
        origin = urls.origin(task.url)
        heapq.heappush(self._queues.setdefault(origin, []), (ready_at, self._seq, task))
        self._size += 1

    def ready(self, origin: str, now: float, count: int) -> list[UrlTask]:
        """Up to ``count`` URLs of ``origin`` whose wait is over, longest waiting first."""
        heap = self._queues.get(origin, [])
        out: list[UrlTask] = []
        while heap and len(out) < count and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        self._forget_if_empty(origin)
        self._size -= len(out)
        return out

    def ready_count(self, origin: str, now: float) -> int:
        return sum(1 for ready_at, _, _ in self._queues.get(origin, []) if ready_at <= now)

    def take_all(self, origin: str) -> list[UrlTask]:
        """Every waiting URL of ``origin`` (its host was given up on)."""
        heap = self._queues.pop(origin, [])
        self._size -= len(heap)
        return [task for _, _, task in sorted(heap)]

    def origins(self) -> list[str]:
        return sorted(self._queues)

    def ready_at(self, origin: str) -> float | None:
        """When the origin's first waiting URL may go, None if it has none waiting."""
        heap = self._queues.get(origin)
        return heap[0][0] if heap else None

    def __len__(self) -> int:
        return self._size

    def export(self) -> list[list[Any]]:
        records: list[list[Any]] = []
        for heap in self._queues.values():
            for ready_at, _, t in sorted(heap, key=lambda entry: entry[:2]):
                record = [ready_at, t.url, t.depth, t.priority, t.redirects, t.attempt]
                if t.request is not None:
                    record.append(t.request.model_dump(mode="json", exclude_defaults=True))
                records.append(record)
        return records

    def restore(self, records: list[list[Any]]) -> None:
        for ready_at, url, depth, priority, redirects, attempt, *request in records:
            task = UrlTask(
                url=url,
                depth=depth,
                priority=priority,
                redirects=redirects,
                attempt=attempt,
                request=RequestData.model_validate(request[0]) if request else None,
            )
            self.push(task, ready_at)

    def _forget_if_empty(self, origin: str) -> None:
        if not self._queues.get(origin, True):
            del self._queues[origin]
