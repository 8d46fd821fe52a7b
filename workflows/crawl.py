"""CrawlWorkflow: one crawl. Starts the domain shards, sends each its seeds, hands out page
credits, decides when the crawl is done, and writes the report. Links between shards go
straight from shard to shard; the parent sees only their counts.

The crawl is done when every shard's last report is idle, with every message of the parent
applied, and for every pair of shards the messages one says it sent the other says it applied.
A shard reports only after its link messages are delivered (signals are awaited), so a
message still on its way shows as a count that does not match, and the crawl cannot end early
(docs/architecture.md, "Links between shards").

Both this workflow and its shards continue as new as their histories grow, so everything
between them goes by workflow id, never by run: the shards are started with the ABANDON
parent-close policy (Temporal applies a parent-close policy when a parent continues as new),
send their results and failures by signal, and are cancelled explicitly when the crawl fails.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.workflow import ExternalWorkflowHandle, ParentClosePolicy

from shardcrawl.core import urls
from shardcrawl.core.errors import SpecError
from shardcrawl.models import (
    CrawlCheckpoint,
    CrawlProgress,
    CrawlReport,
    CrawlSpec,
    Enqueue,
    FetchOptions,
    PrepareRequest,
    PrepareResult,
    ProxyStats,
    ReportRequest,
    ShardFailure,
    ShardInput,
    ShardReport,
    ShardResult,
    UrlTask,
    WarcIndexRequest,
    WarcTotals,
    shard_workflow_id,
)
from shardcrawl.models.proxy_messages import BrokerInput, BrokerResult, broker_workflow_id
from shardcrawl.models.validation import parse_spec
from shardcrawl.policy.completion import crawl_done
from shardcrawl.policy.proxy_router import brokered
from shardcrawl.policy.report import sum_totals
from shardcrawl.policy.segments import pack_records, unpack_records
from shardcrawl.policy.visibility import (
    PAGES,
    PAGES_EVERY_SECONDS,
    SCHEDULED_BY,
    SEED_DOMAINS,
    STATUS,
    seed_domains,
    shard_summary,
    spec_memo,
)
from shardcrawl.workflows.proxy_broker import ProxyBrokerWorkflow
from shardcrawl.workflows.run_size import RunSize
from shardcrawl.workflows.shard import DomainShardWorkflow

__all__ = ["CrawlWorkflow"]

ADMIN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
# The report waits out a store outage (a store that refuses for good fails it at once).
REPORT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# A cancel surfaces as asyncio's CancelledError at most awaits, but as Temporal's when it cuts
# off an operation in flight (e.g. "Signal was cancelled before being sent").
CANCELLED = (asyncio.CancelledError, TemporalCancelledError)
# URLs per enqueue message: each message stays one small payload.
MAX_ENQUEUE_URLS = 1000


@workflow.defn(name="CrawlWorkflow")
class CrawlWorkflow:
    @workflow.init
    def __init__(
        self, spec_input: dict[str, Any], checkpoint: CrawlCheckpoint | None = None
    ) -> None:
        """Runs before any signal handler: a shard's report can arrive with a new run's first
        task, and must find the spec and the previous run's state in place."""
        self._crawl_id = workflow.info().workflow_id
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
        self._results: dict[int, ShardResult] = {}
        self._failure: ShardFailure | None = None
        self._shards: list[ExternalWorkflowHandle[DomainShardWorkflow]] = []
        self._generation = 0
        self._size = RunSize(
            events_per_run=CrawlSpec.model_fields["history_events_per_run"].default
        )
        self._spec_error: str | None = None
        self._pages_published_at = 0.0
        self._previous_crawl: str | None = None
        self._broker_result: BrokerResult | None = None
        try:
            self._spec = parse_spec(spec_input)
        except SpecError as exc:
            self._spec_error = str(exc)
            return
        self._size.events_per_run = self._spec.history_events_per_run
        if checkpoint is not None:
            self._restore(checkpoint)

    @workflow.run
    async def run(
        self, spec_input: dict[str, Any], checkpoint: CrawlCheckpoint | None = None
    ) -> CrawlReport:
        """Takes the spec as a plain mapping so that bad input fails the workflow with a
        message naming the field, instead of failing the workflow task forever. A later run
        also gets the state of the run before it."""
        if self._spec is None:
            raise ApplicationError(
                self._spec_error or "no spec", type="InvalidCrawlSpec", non_retryable=True
            )
        spec = self._spec
        self._shards = [
            workflow.get_external_workflow_handle_for(DomainShardWorkflow.run, self._shard_id(i))
            for i in range(spec.shards)
        ]
        if checkpoint is None:
            await self._begin(spec)
        self._state = "running"
        self._publish()
        self._size.started()

        status = "completed"
        try:
            await self._coordinate(seeds=checkpoint is None)
            while not self._done():
                if self._size.should_continue_as_new():
                    await self._continue_as_new(spec_input)
                await workflow.wait_condition(lambda: self._dirty or self._failure is not None)
                await self._fail_on_failed_shard()
                await self._coordinate(seeds=False)
                self._publish()
        except CANCELLED:
            status = "cancelled"
        self._state = "finishing"
        self._publish()
        while True:
            try:
                report = await self._wind_down(spec, status)
                status = report.status
                break
            except CANCELLED:
                # A cancel can also arrive while winding down (say, just after the crawl
                # completed); winding down is idempotent, so it starts again as a cancel.
                status = "cancelled"
        self._final_report = report
        self._state = status
        self._publish(pages=report.pages_fetched)
        if status == "cancelled":
            raise asyncio.CancelledError()
        if status == "failed":
            classes = ", ".join(f"{k} {v}" for k, v in report.failure_classes.items())
            raise ApplicationError(
                f"no page could be fetched: {report.failures} URLs failed"
                + (f" ({classes})" if classes else ""),
                type="NothingFetched",
                non_retryable=True,
            )
        return report

    async def _begin(self, spec: CrawlSpec) -> None:
        """The first run: check the crawl can run, start the shards, queue the seeds."""
        self._started_at = workflow.now()
        self._credits_left = spec.max_pages
        workflow.upsert_memo(spec_memo(spec))
        workflow.upsert_search_attributes([SEED_DOMAINS.value_set(seed_domains(spec))])
        # Shards get their URLs by message: their spec need not carry every seed (a spec may
        # list many), only the allowed domains the seeds imply.
        shard_spec = spec.model_copy(
            update={"seeds": spec.seeds[:1], "allowed_domains": spec.effective_allowed_domains()}
        )
        prepared = await workflow.execute_activity(
            "prepare_crawl",
            PrepareRequest(
                crawl_id=self._crawl_id,
                spider=spec.spider,
                output=spec.output,
                shard_count=spec.shards,
                fetch=FetchOptions.from_spec(shard_spec),
                previous_crawl=spec.previous_crawl,
                schedule=self._schedule(),
                incremental=spec.incremental,
            ),
            result_type=PrepareResult,
            start_to_close_timeout=timedelta(seconds=300),
            retry_policy=ADMIN_RETRY,
        )
        self._previous_crawl = prepared.previous_crawl
        if brokered(spec.proxies):
            # Before the shards, whose first asks go to it.
            await workflow.start_child_workflow(
                ProxyBrokerWorkflow.run,
                BrokerInput(
                    crawl_id=self._crawl_id,
                    proxies=spec.proxies,
                    history_events_per_run=spec.history_events_per_run,
                ),
                id=broker_workflow_id(self._crawl_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary="proxy broker",
            )
        for index in range(spec.shards):
            self._sent_seq[index] = 0
            shard_input = ShardInput(
                crawl_id=self._crawl_id,
                shard=index,
                shard_count=spec.shards,
                spec=shard_spec,
                previous_crawl=prepared.previous_crawl,
                previous_files=prepared.previous_files[index] if prepared.previous_files else 0,
            )
            self._size.note(shard_input)
            await workflow.start_child_workflow(
                DomainShardWorkflow.run,
                shard_input,
                id=self._shard_id(index),
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=shard_summary(index, spec.shards),
                memo={"crawl_id": self._crawl_id, "shard": index, "shard_count": spec.shards},
            )
        for seed in spec.seeds:
            owner = urls.shard_of(urls.origin(seed), spec.shards)
            self._pending_urls.setdefault(owner, []).append(UrlTask(url=seed, depth=0))
        # Credits ride along with the seeds, saving the shards a round trip to ask for them:
        # each seeded shard gets the most one grant may be, from the whole pool.
        cap = self._grant_cap()
        for owner in sorted(self._pending_urls):
            grant = min(self._credits_left, cap)
            self._credits_left -= grant
            self._pending_credits[owner] = grant

    def _schedule(self) -> str | None:
        """The schedule that started this crawl, if one did (its id is Temporal's attribute)."""
        return workflow.info().typed_search_attributes.get(SCHEDULED_BY)

    def _shard_id(self, index: int) -> str:
        return shard_workflow_id(self._crawl_id, index)

    async def _wind_down(self, spec: CrawlSpec, status: str) -> CrawlReport:
        """Stop the shards, collect their results and write the report."""
        cancel = status == "cancelled"
        await asyncio.gather(
            *(
                shard.signal(DomainShardWorkflow.finish, cancel)
                for index, shard in enumerate(self._shards)
                if index not in self._results
            )
        )
        await workflow.wait_condition(
            lambda: len(self._results) == spec.shards or self._failure is not None
        )
        await self._fail_on_failed_shard()
        proxies = await self._finish_broker(spec)
        if status == "completed" and not sum(r.totals.pages for r in self._results.values()):
            # Out of work without one page is no success: no seed could be fetched. The crawl
            # ends failed, saying why, with its report written.
            status = "failed"
        warc = None
        if spec.warc:
            warc = await workflow.execute_activity(
                "merge_warc_index",
                WarcIndexRequest(crawl_id=self._crawl_id, output=spec.output),
                result_type=WarcTotals,
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=REPORT_RETRY,
            )
        request = ReportRequest(
            crawl_id=self._crawl_id,
            status=status,  # type: ignore[arg-type]
            output=spec.output,
            started_at=self._started_at or workflow.now(),
            finished_at=workflow.now(),
            shards=[self._results[i] for i in sorted(self._results)],
            previous_crawl=self._previous_crawl,
            schedule=self._schedule(),
            warc=warc,
            proxies=proxies,
        )
        self._size.note(request)
        report = await workflow.execute_activity(
            "write_report",
            request,
            result_type=CrawlReport,
            start_to_close_timeout=timedelta(seconds=120),
            retry_policy=REPORT_RETRY,
        )
        self._size.note(report)
        return report

    async def _finish_broker(self, spec: CrawlSpec) -> dict[str, ProxyStats]:
        """Once every shard has finished (given back its leases), the broker ends, with each
        proxy's fleet-wide stats."""
        if not brokered(spec.proxies):
            return {}
        if self._broker_result is None:
            broker = workflow.get_external_workflow_handle(broker_workflow_id(self._crawl_id))
            await broker.signal(ProxyBrokerWorkflow.finish)
            await workflow.wait_condition(lambda: self._broker_result is not None)
        assert self._broker_result is not None
        return self._broker_result.proxies

    # -- what the Temporal UI shows (see shardcrawl.policy.visibility) ----------------------

    def _publish(self, *, pages: int | None = None) -> None:
        """The crawl's state and pages as search attributes, upserted when the state changes
        (pages then too, and at most every PAGES_EVERY_SECONDS otherwise, as each upsert is a
        history event), and a progress line as the current details (free)."""
        state = self._progress_state()
        if pages is None:
            pages = sum(r.totals.pages for r in self._reports.values())
        now = workflow.now().timestamp()
        current = workflow.info().typed_search_attributes
        updates: list[SearchAttributeUpdate[Any]] = []
        if current.get(STATUS) != state:
            updates.append(STATUS.value_set(state))
        if current.get(PAGES) != pages and (
            updates or now - self._pages_published_at >= PAGES_EVERY_SECONDS
        ):
            updates.append(PAGES.value_set(pages))
            self._pages_published_at = now
        if updates:
            workflow.upsert_search_attributes(updates)
        max_pages = self._spec.max_pages if self._spec else 0
        workflow.set_current_details(
            f"{state}: {pages} pages fetched of at most {max_pages}, "
            f"{self._credits_left} credits left, run {self._generation + 1}"
        )

    def _progress_state(self) -> str:
        return "paused" if self._paused and self._state == "running" else self._state

    # -- continue-as-new -------------------------------------------------------------------------

    async def _continue_as_new(self, spec_input: dict[str, Any]) -> None:
        """Send what waits to be sent, then hand the (small) state to the next run. Nothing
        awaits between reading the state and continuing, so no signal falls in between."""
        for _ in range(3):
            if not (self._pending_urls or self._pending_credits or self._pause_changed):
                break
            await self._coordinate(seeds=False)
        checkpoint = CrawlCheckpoint(
            generation=self._generation + 1,
            started_at=self._started_at or workflow.now(),
            reports=list(
                pack_records(r.model_dump(mode="json") for _, r in sorted(self._reports.items()))
            ),
            sent_seq=self._sent_seq,
            granted_at_seq=self._granted_at_seq,
            pending_urls=self._pending_urls,
            pending_credits=self._pending_credits,
            credits_left=self._credits_left,
            paused=self._paused,
            pause_changed=self._pause_changed,
            largest_payload_bytes=self._size.largest_payload,
            previous_crawl=self._previous_crawl,
        )
        self._size.note(checkpoint)
        workflow.continue_as_new(args=[spec_input, checkpoint])

    def _restore(self, checkpoint: CrawlCheckpoint) -> None:
        self._generation = checkpoint.generation
        self._started_at = checkpoint.started_at
        for segment in checkpoint.reports:
            for record in unpack_records(segment):
                report = ShardReport.model_validate(record)
                self._reports[report.shard] = report
        self._sent_seq = dict(checkpoint.sent_seq)
        self._granted_at_seq = dict(checkpoint.granted_at_seq)
        self._pending_urls = {k: list(v) for k, v in checkpoint.pending_urls.items()}
        self._pending_credits = dict(checkpoint.pending_credits)
        self._credits_left = checkpoint.credits_left
        self._paused = checkpoint.paused
        self._pause_changed = checkpoint.pause_changed
        self._size.carry(checkpoint.largest_payload_bytes)
        self._previous_crawl = checkpoint.previous_crawl

    # -- signals and queries ---------------------------------------------------------------------

    @workflow.signal
    def shard_report(self, report: ShardReport) -> None:
        assert self._spec is not None
        self._size.note(report)
        self._reports[report.shard] = report
        self._credits_left += report.returned_credits
        self._dirty = True

    @workflow.signal
    def shard_finished(self, result: ShardResult) -> None:
        self._size.note(result)
        self._results[result.shard] = result
        self._reports.setdefault(
            result.shard, ShardReport(shard=result.shard, processed_seq=0, idle=True)
        ).totals = result.totals
        self._dirty = True

    @workflow.signal
    def proxies_finished(self, result: BrokerResult) -> None:
        self._size.note(result)
        self._broker_result = result

    @workflow.signal
    def shard_failed(self, failure: ShardFailure) -> None:
        if self._failure is None:
            self._failure = failure
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
        state = self._progress_state()
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
            continued_as_new=self._generation,
            largest_payload_bytes=self._size.largest_payload,
        )

    async def _fail_on_failed_shard(self) -> None:
        """A shard that failed fails the crawl, instead of leaving it waiting for reports;
        the other shards are cancelled, as the ABANDON policy would leave them running."""
        failure = self._failure
        if failure is None:
            return
        others = [
            shard.cancel()
            for index, shard in enumerate(self._shards)
            if index != failure.shard and index not in self._results
        ]
        if self._spec is not None and brokered(self._spec.proxies):
            broker = workflow.get_external_workflow_handle(broker_workflow_id(self._crawl_id))
            others.append(broker.cancel())
        # A shard that closed meanwhile cannot be cancelled; that is fine.
        await asyncio.gather(*others, return_exceptions=True)
        raise ApplicationError(
            f"shard {self._shard_id(failure.shard)} failed: {failure.message}",
            type="ShardFailed",
            non_retryable=True,
        )

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
            # A shard asks for what it has queued and gets at most _grant_cap.
            grant = min(report.wants_credits, self._credits_left, self._grant_cap())
            self._credits_left -= grant
            self._pending_credits[index] = grant

    def _grant_cap(self) -> int:
        """The most one grant gives a shard: half the pool's fair share per shard (and never
        less than a chunk), so one shard with a long queue cannot take a small max_pages
        from the others, and a large pool goes in few messages (each grant is a report and
        an enqueue, four signals' worth of work for the Temporal server)."""
        assert self._spec is not None
        spec = self._spec
        fair = self._credits_left // (2 * spec.shards)
        return max(spec.batch_size * max(2, spec.concurrency_per_host), fair)

    async def _coordinate(self, *, seeds: bool) -> None:
        shards = self._shards
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
            # Several messages if many URLs wait; the shard applies them in seq order.
            for start in range(0, max(len(tasks), 1), MAX_ENQUEUE_URLS):
                self._sent_seq[index] += 1
                if credits:
                    self._granted_at_seq[index] = self._sent_seq[index]
                message = Enqueue(
                    seq=self._sent_seq[index],
                    urls=tasks[start : start + MAX_ENQUEUE_URLS],
                    credits=credits,
                    seeds=seeds,
                )
                credits = 0
                self._size.note(message)
                sends.append(shards[index].signal(DomainShardWorkflow.enqueue, message))
        await asyncio.gather(*sends)

    def _done(self) -> bool:
        if self._paused or self._pending_urls or self._pending_credits or self._dirty:
            return False
        return crawl_done(self._reports, self._sent_seq, credits_left=self._credits_left)
