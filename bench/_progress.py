"""A running crawl's progress, read from its status() query: to stderr, and into a timeline."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

from _proc import RssSampler, mb, status_kb

if TYPE_CHECKING:
    from shardcrawl.temporal.client import CrawlHandle

__all__ = ["watch"]


async def watch(
    handle: CrawlHandle,
    start: float,
    every: float,
    sampler: RssSampler,
    timeline: list[dict[str, Any]],
) -> None:
    """Progress to stderr every ``every`` seconds, from the crawl's status() query."""
    last_t, last_pages = start, 0
    while True:
        await asyncio.sleep(every)
        now = time.monotonic()
        try:
            st = await handle.status()
        except Exception as exc:  # a query can fail while the crawl ends or fails
            print(f"[{now - start:7.0f}s] status failed: {exc}", file=sys.stderr, flush=True)
            continue
        pages = st.totals.pages
        rates = (pages / (now - start), (pages - last_pages) / (now - last_t))
        rss = [
            mb(status_kb(t.pid, "VmRSS")) for n, t in sampler.tracked.items() if n != "site_server"
        ]
        timeline.append(
            {
                "t": round(now - start, 1),
                "state": st.state,
                "pages": pages,
                "queued": st.totals.queued,
                "in_flight_batches": st.totals.in_flight_batches,
                "crawl_history_length": st.history_length,
                "rss_mb": rss,
            }
        )
        print(
            f"[{now - start:7.0f}s] {st.state}: {pages} pages, {rates[0]:.1f}/s overall, "
            f"{rates[1]:.1f}/s last {now - last_t:.0f}s; queued {st.totals.queued}, "
            f"batches in flight {st.totals.in_flight_batches}, crawl history "
            f"{st.history_length} events; RSS MB (server, workers) {rss}",
            file=sys.stderr,
            flush=True,
        )
        last_t, last_pages = now, pages
