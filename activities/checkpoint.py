"""Claim-check activities: workflow state segments to and from the crawl's store.

Workflows cannot do I/O, and their payloads must stay small, so a shard that continues as new
writes its large state here one segment per call and its next run reads it back the same way.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from shardcrawl.activities.stores import StoreCache
from shardcrawl.models import (
    SegmentData,
    SegmentDelete,
    SegmentRead,
    SegmentWrite,
    StoreProbe,
)

__all__ = ["CheckpointActivities"]


class CheckpointActivities:
    def __init__(self, *, stores: StoreCache) -> None:
        self._stores = stores

    @activity.defn(name="save_segment")
    async def save_segment(self, request: SegmentWrite) -> None:
        await self._stores.put(request.output, request.key, request.data)

    @activity.defn(name="load_segment")
    async def load_segment(self, request: SegmentRead) -> SegmentData:
        data = await self._stores.get_bytes(request.output, request.key)
        if data is None:
            # Retrying cannot bring back a segment that is gone: the state is lost.
            raise ApplicationError(
                f"state segment {request.key!r} is missing from {request.output!r}",
                type="StateSegmentMissing",
                non_retryable=True,
            )
        return SegmentData(data=data)

    @activity.defn(name="delete_segments")
    async def delete_segments(self, request: SegmentDelete) -> int:
        """Idempotent: deleting what is already gone is fine."""
        return await self._stores.delete_prefix(request.output, request.prefix)

    @activity.defn(name="check_store")
    async def check_store(self, request: StoreProbe) -> None:
        """Succeeds once the store takes a write again; the shard retries it (with backoff,
        without limit) while its store is down, so a whole fleet waits on one probe per
        shard rather than on every batch."""
        await self._stores.check_writable(request.output)
