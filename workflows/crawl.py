"""CrawlWorkflow: one crawl. Starts the domain shards, sends each its seeds, hands out page
credits, decides when the crawl is done, and writes the report. Links between shards go
straight from shard to shard; the parent sees only their counts.

The crawl is done when every shard's last status is idle, with every message of the parent
applied, and for every pair of shards the messages one says it sent the other says it applied.
A shard sends its status only after its link messages are delivered (signals are awaited), so a
message still on its way shows as a count that does not match, and the crawl cannot end early
(docs/architecture.md, "Links between shards").

Both this workflow and its shards continue as new as their histories grow, so everything
between them goes by workflow id, never by run: the shards are started with the ABANDON
parent-close policy (Temporal applies a parent-close policy when a parent continues as new),
send their results and failures by signal, and are cancelled explicitly when the crawl fails.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError

from shardcrawl.core.errors import SpecError
from shardcrawl.models import (
    CrawlCheckpoint,
    CrawlProgress,
    CrawlReport,
    CrawlSpec,
    FetchOptions,
    PrepareRequest,
    ProxyStats,
    ShardFailure,
    ShardResult,
    ShardStatus,
    shard_workflow_id,
)
from shardcrawl.models.proxy_messages import BrokerResult
from shardcrawl.models.validation import parse_spec
from shardcrawl.policy.crawl_outbox import CrawlOutbox
from shardcrawl.policy.proxy_router import brokered
from shardcrawl.policy.segments import pack_records, unpack_records
from shardcrawl.policy.visibility import SCHEDULED_BY, SEED_DOMAINS, seed_domains, spec_memo
from shardcrawl.workflows.crawl_activities import prepare_crawl, write_crawl_report
from shardcrawl.workflows.crawl_children import (
    Shards,
    cancel_children,
    enqueue,
    finish_broker,
    finish_shards,
    pause_shards,
    shard_handles,
    start_broker,
    start_shards,
)
from shardcrawl.workflows.crawl_progress import StatusPublisher, crawl_progress
from shardcrawl.workflows.run_size import RunSize

__all__ = ["CrawlWorkflow"]

# A cancel surfaces as asyncio's CancelledError at most awaits, but as Temporal's when it cuts
# off an operation in flight (e.g. "Signal was cancelled before being sent").
CANCELLED = (asyncio.CancelledError, TemporalCancelledError)


@workflow.defn(name="CrawlWorkflow")
class CrawlWorkflow:
    @workflow.init
    def __init__(
        self, spec_input: dict[str, Any], checkpoint: CrawlCheckpoint | None = None
    ) -> None:
        """Runs before any signal handler: a shard's status can arrive with a new run's first
        task, and must find the spec and the previous run's state in place."""
        self._crawl_id = workflow.info().workflow_id
        self._state: str = "starting"
        self._spec: CrawlSpec | None = None
        self._started_at: datetime | None = None
        self._statuses: dict[int, ShardStatus] = {}
        self._outbox = CrawlOutbox()
        self._paused = False
        self._pause_changed = False
        self._dirty = False
        self._final_report: CrawlReport | None = None
        self._results: dict[int, ShardResult] = {}
        self._failure: ShardFailure | None = None
        self._shards: Shards = []
        self._generation = 0
        self._size = RunSize(
            events_per_run=CrawlSpec.model_fields["history_events_per_run"].default
        )
        self._spec_error: str | None = None
        self._status = StatusPublisher()
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
        self._shards = shard_handles(self._crawl_id, spec.shards)
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
        self._outbox.credits_left = spec.max_pages
        workflow.upsert_memo(spec_memo(spec))
        workflow.upsert_search_attributes([SEED_DOMAINS.value_set(seed_domains(spec))])
        # Shards get their URLs by message: their spec need not carry every seed (a spec may
        # list many), only the allowed domains the seeds imply.
        shard_spec = spec.model_copy(
            update={"seeds": spec.seeds[:1], "allowed_domains": spec.effective_allowed_domains()}
        )
        prepared = await prepare_crawl(
            PrepareRequest(
                crawl_id=self._crawl_id,
                spider=spec.spider,
                output=spec.output,
                shard_count=spec.shards,
                fetch=FetchOptions.from_spec(shard_spec),
                previous_crawl=spec.previous_crawl,
                schedule=self._schedule(),
                incremental=spec.incremental,
            )
        )
        self._previous_crawl = prepared.previous_crawl
        if brokered(spec.proxies):
            # Before the shards, whose first asks go to it.
            await start_broker(self._crawl_id, spec)
        self._outbox.sent_seq = dict.fromkeys(range(spec.shards), 0)
        await start_shards(self._crawl_id, shard_spec, prepared, self._size)
        self._outbox.queue_seeds(spec)

    def _schedule(self) -> str | None:
        """The schedule that started this crawl, if one did (its id is Temporal's attribute)."""
        return workflow.info().typed_search_attributes.get(SCHEDULED_BY)

    async def _wind_down(self, spec: CrawlSpec, status: str) -> CrawlReport:
        """Stop the shards, collect their results and write the report."""
        await finish_shards(self._shards, cancel=status == "cancelled", finished=self._results)
        await workflow.wait_condition(
            lambda: len(self._results) == spec.shards or self._failure is not None
        )
        await self._fail_on_failed_shard()
        proxies = await self._finish_broker(spec)
        if status == "completed" and not sum(r.totals.pages for r in self._results.values()):
            # Out of work without one page is no success: no seed could be fetched. The crawl
            # ends failed, saying why, with its report written.
            status = "failed"
        return await write_crawl_report(
            self._crawl_id,
            spec,
            status,
            started_at=self._started_at,
            results=self._results,
            previous_crawl=self._previous_crawl,
            schedule=self._schedule(),
            proxies=proxies,
            size=self._size,
        )

    async def _finish_broker(self, spec: CrawlSpec) -> dict[str, ProxyStats]:
        """Once every shard has finished (given back its leases), the broker ends, with each
        proxy's fleet-wide stats."""
        if not brokered(spec.proxies):
            return {}
        if self._broker_result is None:
            await finish_broker(self._crawl_id)
            await workflow.wait_condition(lambda: self._broker_result is not None)
        assert self._broker_result is not None
        return self._broker_result.proxies

    # -- what the Temporal UI shows (see shardcrawl.policy.visibility) ----------------------

    def _publish(self, *, pages: int | None = None) -> None:
        """The crawl's state and pages (by default, as the shards' statuses last gave them)."""
        if pages is None:
            pages = sum(r.totals.pages for r in self._statuses.values())
        self._status.publish(
            self._progress_state(),
            pages,
            max_pages=self._spec.max_pages if self._spec else 0,
            credits_left=self._outbox.credits_left,
            run=self._generation + 1,
        )

    def _progress_state(self) -> str:
        return "paused" if self._paused and self._state == "running" else self._state

    # -- continue-as-new -------------------------------------------------------------------------

    async def _continue_as_new(self, spec_input: dict[str, Any]) -> None:
        """Send what waits to be sent, then hand the (small) state to the next run. Nothing
        awaits between reading the state and continuing, so no signal falls in between."""
        for _ in range(3):
            if not (self._outbox.waiting() or self._pause_changed):
                break
            await self._coordinate(seeds=False)
        checkpoint = CrawlCheckpoint(
            generation=self._generation + 1,
            started_at=self._started_at or workflow.now(),
            statuses=list(
                pack_records(r.model_dump(mode="json") for _, r in sorted(self._statuses.items()))
            ),
            **self._outbox.export(),
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
        for segment in checkpoint.statuses:
            for record in unpack_records(segment):
                status = ShardStatus.model_validate(record)
                self._statuses[status.shard] = status
        self._outbox.restore(checkpoint)
        self._paused = checkpoint.paused
        self._pause_changed = checkpoint.pause_changed
        self._size.carry(checkpoint.largest_payload_bytes)
        self._previous_crawl = checkpoint.previous_crawl

    # -- signals and queries ---------------------------------------------------------------------

    @workflow.signal
    def shard_status(self, status: ShardStatus) -> None:
        assert self._spec is not None
        self._size.note(status)
        self._statuses[status.shard] = status
        self._outbox.credits_left += status.returned_credits
        self._dirty = True

    @workflow.signal
    def shard_finished(self, result: ShardResult) -> None:
        self._size.note(result)
        self._results[result.shard] = result
        self._statuses.setdefault(
            result.shard, ShardStatus(shard=result.shard, processed_seq=0, idle=True)
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
        return crawl_progress(
            self._crawl_id,
            self._progress_state(),
            spec=self._spec,
            started_at=self._started_at,
            statuses=self._statuses,
            credits_left=self._outbox.credits_left,
            continued_as_new=self._generation,
            largest_payload_bytes=self._size.largest_payload,
        )

    async def _fail_on_failed_shard(self) -> None:
        """A shard that failed fails the crawl, instead of leaving it waiting for statuses;
        the other shards are cancelled, as the ABANDON policy would leave them running."""
        failure = self._failure
        if failure is None:
            return
        spared = {failure.shard, *self._results}
        await cancel_children(self._crawl_id, self._spec, self._shards, spared)
        raise ApplicationError(
            f"shard {shard_workflow_id(self._crawl_id, failure.shard)} failed: {failure.message}",
            type="ShardFailed",
            non_retryable=True,
        )

    @workflow.query
    def final_report(self) -> CrawlReport | None:
        return self._final_report

    # -- coordination ----------------------------------------------------------------------------

    async def _coordinate(self, *, seeds: bool) -> None:
        """Send the shards what changed: a pause or resume, then credits and URLs."""
        assert self._spec is not None
        self._dirty = False
        if self._pause_changed:
            self._pause_changed = False
            await pause_shards(self._shards, self._paused)
        self._outbox.grant(self._statuses, self._spec)
        messages = self._outbox.take_messages(seeds=seeds)
        for _, message in messages:
            self._size.note(message)
        await enqueue(self._shards, messages)

    def _done(self) -> bool:
        return not (self._paused or self._dirty) and self._outbox.done(self._statuses)
