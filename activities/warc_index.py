"""The merge_warc_index activity: the crawl's CDXJ index, from its batches' sorted parts.

Each batch leaves ``ID/state/warc-index/BATCH.cdxj``: a first line with its WARC file's record
count and size, then its index lines, sorted. The merge reads at most ``FAN_IN`` parts at a
time into a sorted run on local disk, then merges the runs (recursively, if there are more
than ``FAN_IN``), so memory holds ``FAN_IN`` parts or one line per run, never the whole
crawl. The result goes to the store in one streamed write, atomically, as ``index.cdxj``.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from typing import TypeVar

from temporalio import activity

from shardcrawl.activities.cdxj import merge_sorted
from shardcrawl.activities.stores import HEARTBEAT_EVERY_SECONDS, StoreCache
from shardcrawl.core import layout
from shardcrawl.models import WarcIndexRequest, WarcTotals

__all__ = ["FAN_IN", "WarcIndexActivities"]

FAN_IN = 64
T = TypeVar("T")


def _merge_files(paths: list[str], into: str) -> None:
    """Merge sorted local files into one."""
    with ExitStack() as stack, open(into, "w", encoding="utf-8") as out:
        sources = [stack.enter_context(open(p, encoding="utf-8")) for p in paths]
        out.writelines(merge_sorted(sources))


def _write_run(parts: list[list[str]], into: str) -> None:
    with open(into, "w", encoding="utf-8") as out:
        out.writelines(merge_sorted(parts))


def _merge_runs(runs: list[str], scratch: str) -> str:
    """Merge sorted runs, ``FAN_IN`` at a time, until one is left; its path."""
    level = 0
    while len(runs) > 1:
        level += 1
        merged = []
        for start in range(0, len(runs), FAN_IN):
            into = os.path.join(scratch, f"level-{level}-{start:06d}")
            _merge_files(runs[start : start + FAN_IN], into)
            merged.append(into)
        runs = merged
    return runs[0]


async def _heartbeating(function: Callable[..., T], *args: object) -> T:
    """Run local file work in a thread, heartbeating while it runs."""
    call = asyncio.ensure_future(asyncio.to_thread(function, *args))
    while True:
        done, _ = await asyncio.wait({call}, timeout=HEARTBEAT_EVERY_SECONDS)
        if done:
            return call.result()
        activity.heartbeat()


class WarcIndexActivities:
    def __init__(self, *, stores: StoreCache) -> None:
        self._stores = stores

    @activity.defn(name="merge_warc_index")
    async def merge_warc_index(self, request: WarcIndexRequest) -> WarcTotals:
        """Write ``OUT/ID/warc/index.cdxj`` and return what the WARC files hold. Idempotent:
        the parts stay until the report is written, and the index is replaced whole."""
        keys = await self._stores.list_keys(
            request.output, layout.warc_index_parts_prefix(request.crawl_id)
        )
        totals = WarcTotals(files=len(keys))
        with tempfile.TemporaryDirectory(prefix="shardcrawl-cdxj-") as scratch:
            runs = [os.path.join(scratch, "empty")]
            open(runs[0], "w").close()
            for start in range(0, len(keys), FAN_IN):
                parts = []
                for key in keys[start : start + FAN_IN]:
                    data = await self._stores.get_bytes(request.output, key) or b""
                    head, _, body = data.decode("utf-8").partition("\n")
                    summary = json.loads(head) if head else {}
                    totals.records += summary.get("records", 0)
                    totals.bytes += summary.get("bytes", 0)
                    lines = body.splitlines(keepends=True)
                    totals.index_lines += len(lines)
                    parts.append(lines)
                run = os.path.join(scratch, f"run-{start:09d}")
                await _heartbeating(_write_run, parts, run)
                runs.append(run)
            index = await _heartbeating(_merge_runs, runs, scratch)
            await self._stores.put_file(
                request.output, layout.warc_index_key(request.crawl_id), index
            )
        return totals
