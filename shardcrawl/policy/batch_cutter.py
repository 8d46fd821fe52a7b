"""Cuts batches out of many hosts' slices, so that a crawl of many small hosts runs few large
batches (one Scrapy crawler each) instead of one tiny batch per host.

A slice is one host's requests with that host's politeness allotment (and proxy slots). A slice
is never split: it joins the open batch while the batch stays within ``max_requests`` and
``max_url_bytes``; otherwise the open batch is closed first. A host that fills a batch on its
own so gets a batch of its own, as before, and a crawl of a few large hosts is cut as it was.
The open batch may outlive a dispatch pass (``DispatchPlanner`` holds a small one open to fill):
``opened_at`` says since when it waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from shardcrawl.models import ProxyLease, UrlTask
from shardcrawl.policy.politeness import Allotment

__all__ = ["BatchCutter", "HostSlice"]


@dataclass
class HostSlice:
    origin: str
    allotment: Allotment
    proxies: list[ProxyLease]
    tasks: list[UrlTask]

    def url_bytes(self) -> int:
        return sum(len(task.url) for task in self.tasks)


class BatchCutter:
    def __init__(self, *, max_requests: int, max_url_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_url_bytes = max_url_bytes
        self._open: list[HostSlice] = []
        self._requests = 0
        self._bytes = 0
        self.opened_at = 0.0

    @property
    def requests(self) -> int:
        """Requests in the open batch."""
        return self._requests

    def add(self, part: HostSlice, now: float) -> list[HostSlice] | None:
        """Adds a slice at ``now``; returns the batch it closed, if it did not fit in the open
        one."""
        size, url_bytes = len(part.tasks), part.url_bytes()
        closed = None
        too_many = self._requests + size > self.max_requests
        too_long = self._bytes + url_bytes > self.max_url_bytes
        if self._open and (too_many or too_long):
            closed = self.close()
        if not self._open:
            self.opened_at = now
        self._open.append(part)
        self._requests += size
        self._bytes += url_bytes
        return closed

    def __bool__(self) -> bool:
        """Whether a batch is being cut (it becomes one more batch in flight when closed)."""
        return bool(self._open)

    def close(self) -> list[HostSlice] | None:
        """The open batch, if it has a slice; the cutter starts a new one."""
        if not self._open:
            return None
        batch, self._open = self._open, []
        self._requests = self._bytes = 0
        return batch
