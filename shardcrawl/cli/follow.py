"""Following a crawl until it closes, apart from the commands: run, status, wait, cancel use it."""

from __future__ import annotations

import asyncio
import contextlib
import time

from rich.live import Live
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from shardcrawl.cli.display import progress_line, progress_table
from shardcrawl.cli.report_view import report_table
from shardcrawl.cli.terminal import EXIT_OK, CrawlNotCompleted, console
from shardcrawl.core import layout
from shardcrawl.core.errors import root_cause
from shardcrawl.core.layout import shown_location
from shardcrawl.models import CrawlReport, CrawlSpec
from shardcrawl.temporal.client import CrawlClient, CrawlHandle

CANCEL_WAIT_SECONDS = 60

# Each refresh is a query to the crawl and three to each shard, some 3 ms of the Temporal
# server's CPU each (docs/benchmarks.md): every 0.5 s that was 0.4 ms a page on a broad crawl.
REFRESH_SECONDS = 2.0


async def watch_crawl(handle: CrawlHandle, *, verbose: bool = False, interval: float = 0.5) -> None:
    """Show progress until the crawl closes: a live view sized to the terminal, lines
    otherwise, refreshed every REFRESH_SECONDS (the end is seen within ``interval``). The
    live view goes when the crawl ends, so that the report shows once."""
    last = 0.0
    if console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            while await _running(handle):
                if time.monotonic() - last >= REFRESH_SECONDS:
                    live.update(progress_table(await handle.status(), verbose=verbose))
                    last = time.monotonic()
                await asyncio.sleep(interval)
        return
    while await _running(handle):
        if time.monotonic() - last >= REFRESH_SECONDS:
            console.print(progress_line(await handle.status()), highlight=False, markup=False)
            last = time.monotonic()
        await asyncio.sleep(interval)


async def _running(handle: CrawlHandle) -> bool:
    return await handle.execution_status() == WorkflowExecutionStatus.RUNNING


async def until_closed(handle: CrawlHandle) -> None:
    while await _running(handle):
        await asyncio.sleep(0.5)


async def show_final(handle: CrawlHandle) -> CrawlReport:
    """The report of a completed crawl; CrawlNotCompleted, with the reason, otherwise."""
    try:
        return await handle.wait()
    except WorkflowFailureError as exc:
        message = root_cause(exc)
        status = await handle.execution_status()
        name = status.name.lower() if status else "failed"
        raise CrawlNotCompleted(f"crawl {handle.crawl_id} {name}: {message}") from None


async def start_and_follow(
    client: CrawlClient, spec: CrawlSpec, crawl_id: str | None, *, verbose: bool = False
) -> int:
    handle = await client.start(spec, crawl_id=crawl_id)
    console.print(f"crawl id: {handle.crawl_id}", highlight=False, markup=False)
    try:
        await watch_crawl(handle, verbose=verbose)
    except asyncio.CancelledError:
        # Ctrl-C: cancel the crawl and give the workers (ours, for `run`) time to land its
        # in-flight batches and write the report before they are stopped.
        await handle.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until_closed(handle), timeout=CANCEL_WAIT_SECONDS)
        raise
    report = await show_final(handle)
    console.print(report_table(report))
    console.print(
        f"report: {shown_location(report.output).rstrip('/')}/{layout.report_key(report.crawl_id)}",
        highlight=False,
        markup=False,
    )
    return EXIT_OK
