"""The shard's activity calls that use the store, run again with the same input while it is down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError

from shardcrawl.core import layout
from shardcrawl.models import (
    STORE_UNAVAILABLE,
    SegmentData,
    SegmentRead,
    SegmentWrite,
    ShardInput,
    StoreProbe,
)
from shardcrawl.policy.activity_timeouts import SEGMENT_TIMEOUT
from shardcrawl.workflows.run_size import RunSize

__all__ = ["CANCELLED", "ShardActivities", "raise_if_final"]

T = TypeVar("T")

# A worker that dies is noticed within HEARTBEAT_TIMEOUT and its batch runs elsewhere.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# A store that is down is not retried by the activity: the shard puts the work back and waits
# for the store with one probe (STORE_PROBE_RETRY), however long the outage lasts.
STORE_PROBE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=15)
)
SEGMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[STORE_UNAVAILABLE],
)
# Records per file of the URLs that ended in the shard: each write stays one small payload.
RECORDS_PER_FILE = 500
CANCELLED = (asyncio.CancelledError, TemporalCancelledError)


def raise_if_final(exc: ActivityError) -> None:
    """An activity that failed for good (a spider that cannot run, a store that refuses)
    fails the shard with the activity's own type and message, not Temporal's wrapper."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from exc


class ShardActivities:
    """``on_store_back`` is called once the store answers again (or the probe ends)."""

    def __init__(self, shard: ShardInput, size: RunSize, on_store_back: Callable[[], None]) -> None:
        self._input = shard
        self._output = shard.spec.output
        self._size = size
        self._on_store_back = on_store_back
        # While the store is down: since when (workflow time) and its last error.
        self.store_down_since = 0.0
        self.store_down_cause = ""

    async def _until_stored(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run an activity that uses the store; while the store is down, wait for it and run
        the activity again with the same input (so the same keys), counting no attempt."""
        while True:
            try:
                return await call()
            except ActivityError as exc:
                cause = exc.cause
                if not (isinstance(cause, ApplicationError) and cause.type == STORE_UNAVAILABLE):
                    raise
                await self._wait_for_store(cause.message)

    async def run(
        self,
        name: str,
        request: object,
        result_type: type[T] | None,
        *,
        timeout: timedelta,
        retry_policy: RetryPolicy,
        heartbeat: bool,
        task_queue: str | None = None,
    ) -> T:
        """Run an activity, and run it again with the same input while the store is down.
        One that fetches (a batch, robots.txt) heartbeats, so a dead worker is noticed.
        ``task_queue``: a fleet's (None: the shard's own). No schedule-to-start or
        schedule-to-close timeout is set, on purpose: an activity waiting for a fleet with no
        worker waits (status shows it), and its URLs never fail for it."""
        return await self._until_stored(
            lambda: workflow.execute_activity(
                name,
                request,
                result_type=result_type,
                task_queue=task_queue,
                start_to_close_timeout=timeout,
                heartbeat_timeout=HEARTBEAT_TIMEOUT if heartbeat else None,
                retry_policy=retry_policy,
            )
        )

    async def store(self, name: str, request: object, result_type: type[T] | None = None) -> T:
        """A claim-check activity (segments, the previous crawl's files): one store call,
        retried as long as it fails in other ways, and waited out while the store is down."""
        return await self.run(
            name,
            request,
            result_type,
            timeout=SEGMENT_TIMEOUT,
            retry_policy=SEGMENT_RETRY,
            heartbeat=False,
        )

    async def _wait_for_store(self, cause: str) -> None:
        """One probe per shard, retried with backoff and no limit, however many batches wait;
        no batch is cut meanwhile, and status shows since when the store is down."""
        if self.store_down_since:
            await workflow.wait_condition(lambda: not self.store_down_since)
            return
        self.store_down_since = workflow.now().timestamp()
        self.store_down_cause = cause
        workflow.logger.warning("store down, waiting for it: %s", cause)
        try:
            await workflow.execute_activity(
                "check_store",
                StoreProbe(output=self._output),
                start_to_close_timeout=SEGMENT_TIMEOUT,
                retry_policy=STORE_PROBE_RETRY,
            )
        finally:
            self.store_down_since = 0.0
            self.store_down_cause = ""
            self._on_store_back()

    async def save_segments(
        self, stage: str, kind: str, segments: Iterable[bytes], generation: int
    ) -> list[str]:
        """One save activity per segment, each awaited before the next is packed."""
        keys = []
        for part, data in enumerate(segments):
            key = layout.shard_state_key(
                self._input.crawl_id, self._input.shard, generation, f"{stage}-{kind}", part
            )
            request = SegmentWrite(output=self._output, key=key, data=data)
            self._size.note(request)
            await self.store("save_segment", request)
            keys.append(key)
        return keys

    async def load_segment(self, key: str) -> bytes:
        result = await self.store(
            "load_segment", SegmentRead(output=self._output, key=key), SegmentData
        )
        self._size.note(result)
        return result.data

    async def write_records(self, records: dict[str, list[dict[str, Any]]], seq: int) -> int:
        """Records of URLs that ended in the shard (a host given up on, a batch cut off),
        into the crawl's items: a file per origin and write, named by the shard and a
        sequence (from ``seq``; the last one is returned), so a retried write replaces its
        own file."""
        for origin, lines in records.items():
            for start in range(0, len(lines), RECORDS_PER_FILE):
                seq += 1
                name = f"s{self._input.shard:04d}-ended-{seq:06d}"
                chunk = lines[start : start + RECORDS_PER_FILE]
                data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk)
                write = SegmentWrite(
                    output=self._output,
                    key=layout.items_key(self._input.crawl_id, origin, name),
                    data=data.encode(),
                )
                self._size.note(write)
                await self.store("save_segment", write)
        return seq
