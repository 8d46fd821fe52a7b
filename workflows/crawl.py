"""CrawlWorkflow: one crawl. Starts the domain shards, routes URLs to their owners, hands out
page credits, decides when the crawl is done, and writes the report.

The crawl is done when every shard reports idle after applying every message sent to it and
no message waits to be sent. Shards only get work from the parent, and a shard sends its
forwarded links before it reports idle (signals are awaited), so this cannot end a crawl early.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from shardcrawl import urls
    from shardcrawl.contracts import (
        CrawlProgress,
        CrawlReport,
        CrawlSpec,
        Enqueue,
        PrepareRequest,
        ReportRequest,
        ShardInput,
        ShardReport,
        ShardResult,
        UrlTask,
    )
    from shardcrawl.errors import SpecError
    from shardcrawl.report import build_report, sum_totals
    from shardcrawl.spec import parse_spec
    from workflows.shard import DomainShardWorkflow

__all__ = ["CrawlWorkflow"]

ADMIN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
# A cancel surfaces as asyncio's CancelledError at most awaits, but as Temporal's when it cuts
# off an operation in flight (e.g. "Signal was cancelled before being sent").
CANCELLED = (asyncio.CancelledError, TemporalCancelledError)


@workflow.defn(name="CrawlWorkflow")
class CrawlWorkflow:
    def __init__(self) -> None:
        self._crawl_id = ""
        self._state: str = "starting"
        self._spec: CrawlSpec | None = None
        self._started_at: datetime | None = None
        self._reports: dict[int, ShardReport] = {}
        self._sent_seq: dict[int, int] = {}
        self._granted_at_seq: dict[int, int] = {}
        self._pending_urls: dict[int, list[UrlTask]] = {}
        self._pending_credits: dict[int, int] = {}
        self._credits_left = 0
        self._paused = False
        self._pause_changed = False
        self._dirty = False
        self._final_report: CrawlReport | None = None

    @workflow.run
    async def run(self, spec_input: dict[str, Any]) -> CrawlReport:
        """Takes the spec as a plain mapping so that bad input fails the workflow with a
        message naming the field, instead of failing the workflow task forever."""
        try:
            spec = parse_spec(spec_input)
        except SpecError as exc:
            raise ApplicationError(str(exc), type="InvalidCrawlSpec", non_retryable=True) from None
        self._spec = spec
        self._crawl_id = workflow.info().workflow_id
        self._started_at = workflow.now()
        self._credits_left = spec.max_pages

        await workflow.execute_activity(
            "prepare_crawl",
            PrepareRequest(crawl_id=self._crawl_id, spider=spec.spider, output=spec.output),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=ADMIN_RETRY,
        )
        shards = [await self._start_shard(spec, i) for i in range(spec.shards)]
        self._state = "running"
        for seed in spec.seeds:
            owner = urls.shard_of(urls.origin(seed), spec.shards)
            self._pending_urls.setdefault(owner, []).append(UrlTask(url=seed, depth=0))
        # Credits ride along with the seeds, saving the shards a round trip to ask for them.
        for owner in sorted(self._pending_urls):
            grant = min(self._credits_left, spec.batch_size * max(2, spec.concurrency_per_host))
            self._credits_left -= grant
            self._pending_credits[owner] = grant

        status = "completed"
        try:
            await self._coordinate(shards, seeds=True)
            while not self._done():
                await workflow.wait_condition(
                    lambda: self._dirty or any(shard.done() for shard in shards)
                )
                self._fail_on_ended_shard(shards)
                await self._coordinate(shards, seeds=False)
        except CANCELLED:
            status = "cancelled"
        self._state = "finishing"
        while True:
            try:
                report = await self._wind_down(spec, shards, status)
                break
            except CANCELLED:
                # A cancel can also arrive while winding down (say, just after the crawl
                # completed); winding down is idempotent, so it starts again as a cancel.
                status = "cancelled"
        self._final_report = report
        self._state = status
        if status == "cancelled":
            raise asyncio.CancelledError()
        return report

    async def _wind_down(
        self,
        spec: CrawlSpec,
        shards: list[ChildWorkflowHandle[DomainShardWorkflow, ShardResult]],
        status: str,
    ) -> CrawlReport:
        """Stop the shards, collect their results and write the report."""
        cancel = status == "cancelled"
        await asyncio.gather(
            *(shard.signal(DomainShardWorkflow.finish, cancel) for shard in shards)
        )
        results: list[ShardResult] = list(await asyncio.gather(*shards))
        report = build_report(
            crawl_id=self._crawl_id,
            status=status,  # type: ignore[arg-type]
            output=spec.output,
            started_at=self._started_at or workflow.now(),
            finished_at=workflow.now(),
            results=results,
        )
        await workflow.execute_activity(
            "write_report",
            ReportRequest(report=report),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=ADMIN_RETRY,
        )
        return report

    async def _start_shard(
        self, spec: CrawlSpec, index: int
    ) -> ChildWorkflowHandle[DomainShardWorkflow, ShardResult]:
        self._sent_seq[index] = 0
        return await workflow.start_child_workflow(
            DomainShardWorkflow.run,
            ShardInput(crawl_id=self._crawl_id, shard=index, shard_count=spec.shards, spec=spec),
            id=f"{self._crawl_id}/shard-{index}",
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )

    # -- signals and queries ---------------------------------------------------------------------

    @workflow.signal
    def shard_report(self, report: ShardReport) -> None:
        assert self._spec is not None
        self._reports[report.shard] = report
        self._credits_left += report.returned_credits
        for task in report.forwards:
            owner = urls.shard_of(urls.origin(task.url), self._spec.shards)
            self._pending_urls.setdefault(owner, []).append(task)
        self._dirty = True

    @workflow.signal
    def pause(self) -> None:
        self._set_paused(True)

    @workflow.signal
    def resume(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        if paused != self._paused:
            self._paused = paused
            self._pause_changed = True
            self._dirty = True

    @workflow.query
    def progress(self) -> CrawlProgress:
        shards = [self._reports[i].totals for i in sorted(self._reports)]
        totals = sum_totals(shards)
        elapsed = (workflow.now() - self._started_at).total_seconds() if self._started_at else 0.0
        state = "paused" if self._paused and self._state == "running" else self._state
        return CrawlProgress(
            crawl_id=self._crawl_id,
            state=state,  # type: ignore[arg-type]
            started_at=self._started_at,
            elapsed_seconds=round(elapsed, 3),
            pages_per_second=round(totals.pages / elapsed, 3) if elapsed > 0 else 0.0,
            max_pages=self._spec.max_pages if self._spec else 0,
            shard_count=self._spec.shards if self._spec else 0,
            credits_left=self._credits_left,
            totals=totals,
            shards=shards,
            history_length=workflow.info().get_current_history_length(),
        )

    @staticmethod
    def _fail_on_ended_shard(
        shards: list[ChildWorkflowHandle[DomainShardWorkflow, ShardResult]],
    ) -> None:
        """A shard ends only when told to; one that ended otherwise failed, and so does the
        crawl, instead of waiting for its reports forever."""
        for shard in shards:
            if shard.done():
                cause = shard.exception() if not shard.cancelled() else None
                root = cause
                while root is not None and getattr(root, "cause", None) is not None:
                    root = root.cause  # type: ignore[attr-defined]
                kind = getattr(root, "type", None) or type(root).__name__
                why = f"{kind}: {root}" if root is not None else "cancelled"
                raise ApplicationError(
                    f"shard {shard.id} ended before the crawl did: {why}",
                    type="ShardFailed",
                    non_retryable=True,
                ) from cause

    @workflow.query
    def final_report(self) -> CrawlReport | None:
        return self._final_report

    # -- coordination ----------------------------------------------------------------------------

    def _grant_credits(self) -> None:
        """Give page credits to shards that asked, once they have applied the last grant."""
        for index, report in sorted(self._reports.items()):
            if self._credits_left <= 0:
                return
            if report.wants_credits <= 0:
                continue
            if report.processed_seq < self._granted_at_seq.get(index, 0):
                continue
            if self._pending_credits.get(index, 0) > 0:
                continue
            grant = min(report.wants_credits, self._credits_left)
            self._credits_left -= grant
            self._pending_credits[index] = grant

    async def _coordinate(
        self, shards: list[ChildWorkflowHandle[DomainShardWorkflow, ShardResult]], *, seeds: bool
    ) -> None:
        self._dirty = False
        if self._pause_changed:
            self._pause_changed = False
            await asyncio.gather(
                *(shard.signal(DomainShardWorkflow.set_paused, self._paused) for shard in shards)
            )
        self._grant_credits()
        sends = []
        for index in sorted(set(self._pending_urls) | set(self._pending_credits)):
            tasks = self._pending_urls.pop(index, [])
            credits = self._pending_credits.pop(index, 0)
            if not tasks and not credits:
                continue
            self._sent_seq[index] += 1
            if credits:
                self._granted_at_seq[index] = self._sent_seq[index]
            message = Enqueue(seq=self._sent_seq[index], urls=tasks, credits=credits, seeds=seeds)
            sends.append(shards[index].signal(DomainShardWorkflow.enqueue, message))
        await asyncio.gather(*sends)

    def _done(self) -> bool:
        if self._paused or self._pending_urls or self._pending_credits or self._dirty:
            return False
        for index, sent in self._sent_seq.items():
            report = self._reports.get(index)
            if report is None or not report.idle or report.processed_seq != sent:
                return False
            if report.wants_credits > 0 and self._credits_left > 0:
                return False
        return True
