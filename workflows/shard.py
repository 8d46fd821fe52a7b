"""DomainShardWorkflow: the one owner of its hosts' frontier, seen-set and politeness budget.

A thin shell over ``ShardEngine`` (shardcrawl/shard_engine.py), which makes every decision: the
shell takes URLs and page credits from its parent (``enqueue``), runs the ``crawl_batch`` and
``fetch_robots`` activities the engine plans, hands it their results, sends links owned by
other shards straight to them (``links``), and its idleness, credit needs and link counts to
the parent (``shard_report``).

Before its history grows large it continues as new: it stops dispatching, lets its batches
land, writes the engine's state to the store as segments (a claim-check: history holds only
their keys), and hands the keys, its small counters and any message that arrived meanwhile to
its next run. When told to finish, it stores its per-host counters the same way and signals
its result to the parent, which may itself be a later run than the one that started the shard.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import MetricCounter, MetricGauge, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError

from shardcrawl.core import layout
from shardcrawl.core.errors import root_cause
from shardcrawl.core.fleet_names import fetch_task_queue
from shardcrawl.models import (
    BATCH_FAILED,
    STORE_UNAVAILABLE,
    BatchRequest,
    BatchResult,
    Enqueue,
    FetchOptions,
    HostStats,
    LinkMessage,
    PreviousPage,
    PreviousRequest,
    RobotsRequest,
    RobotsResults,
    RobotsTarget,
    SegmentData,
    SegmentDelete,
    SegmentRead,
    SegmentWrite,
    ShardCheckpoint,
    ShardFailure,
    ShardInput,
    ShardReport,
    ShardResult,
    ShardTotals,
    SitemapRequest,
    SitemapResult,
    SitemapResults,
    SitemapTarget,
    StoreProbe,
    shard_workflow_id,
)
from shardcrawl.models.proxy_messages import ProxyGrants, broker_workflow_id
from shardcrawl.policy.batch_cutter import HostSlice
from shardcrawl.policy.link_counts import LinkCounts
from shardcrawl.policy.proxy_router import brokered
from shardcrawl.policy.segments import (
    pack_fingerprints,
    pack_records,
    unpack_batch_result,
    unpack_records,
)
from shardcrawl.policy.shard_engine import STATE_KINDS, ShardEngine
from shardcrawl.workflows.parent import crawl_parent
from shardcrawl.workflows.run_size import RunSize

__all__ = ["DomainShardWorkflow"]

T = TypeVar("T")

# A worker that dies is noticed within HEARTBEAT_TIMEOUT and its batch runs elsewhere.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# A store that is down is not retried here: the shard puts the work back and waits for the
# store with one probe (STORE_PROBE_RETRY), however long the outage lasts. A worker that dies
# takes its batch's attempt with it, and a fleet that loses workers must not fail crawls, so a
# batch has 20 attempts; one that fails every worker it lands on (a page that crashes
# Scrapy) fails the crawl after those, some ten minutes on.
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
    non_retryable_error_types=["UnknownSpider", STORE_UNAVAILABLE],
)
ROBOTS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=[STORE_UNAVAILABLE],
)
STORE_PROBE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=15)
)
CANCEL_GRACE = timedelta(seconds=30)
SEGMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[STORE_UNAVAILABLE],
)
# One store call may take boto3's four attempts at its 5 s connect and 30 s read timeouts.
STORE_CALL_SECONDS = 180
SEGMENT_TIMEOUT = timedelta(seconds=STORE_CALL_SECONDS)
# Records per file of the URLs that ended in the shard: each write stays one small payload.
RECORDS_PER_FILE = 500
# Links per message to another shard: each message stays one small payload.
MAX_LINKS_PER_MESSAGE = 1000
CANCELLED = (asyncio.CancelledError, TemporalCancelledError)
# Checkpoint fields holding each kind of the engine's state.
STATE_FIELDS = {
    "frontier": "frontier_segments",
    "hosts": "hosts_segments",
    "retries": "retry_segments",
    "pressure": "pressure_segments",
    "robots": "robots_segments",
    "sitemaps": "sitemap_segments",
}
# A sitemaps activity that fails all its attempts: its sitemaps count as not read.
SITEMAP_FETCH_FAILED = "sitemap_fetch_failed"


def _raise_if_final(exc: ActivityError) -> None:
    """An activity that failed for good (a spider that cannot run, a store that refuses)
    fails the shard with the activity's own type and message, not Temporal's wrapper."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from exc


def _batch_timeout(request: BatchRequest, fetch: FetchOptions) -> timedelta:
    """Long enough for every URL of the slowest host to time out one after another within
    its lease (hosts fetch side by side), and for a few slow store calls. (A store that is
    down fails its first call, so the items files of many origins need no call's worst case
    each; a worker that dies is noticed by its heartbeat, not by this.)"""
    timeout = fetch.download_timeout_seconds
    fetching = max(
        (timeout + part.delay_seconds) * part.count / part.concurrency for part in request.slices
    )
    store_calls = min(len(request.slices), 3)
    return timedelta(seconds=60 + STORE_CALL_SECONDS * store_calls + fetching)


def _documents_timeout(fetch: FetchOptions, store_calls: int) -> timedelta:
    """A fetch_robots or fetch_sitemaps activity: every document side by side, redirects
    included, then a few slow store calls (as for a batch)."""
    fetching = 6 * fetch.download_timeout_seconds
    return timedelta(seconds=60 + fetching + STORE_CALL_SECONDS * store_calls)


@workflow.defn(name="DomainShardWorkflow")
class DomainShardWorkflow:
    @workflow.init
    def __init__(self, shard: ShardInput) -> None:
        """Runs before any signal handler, so a signal that arrives with a new run's first
        task already sees the checkpoint's counters and flags (and wins over them)."""
        self._inbox: dict[int, Enqueue] = {}
        self._processed_seq = 0
        # Link messages from other shards, not yet applied, and the counts of those sent
        # and applied (reported to the parent, which ends the crawl only when they match).
        self._link_inbox: list[LinkMessage] = []
        self._links = LinkCounts()
        self._finish = False
        self._cancel = False
        self._paused = False
        self._dirty = False
        # The timer that wakes the loop at the engine's next wake-up: its deadline (workflow
        # time) and the task sleeping until then; kept while the deadline holds (see _arm).
        self._alarm: tuple[float, asyncio.Task[None]] | None = None
        self._previous_next = 0
        # In-flight activity tasks, in start order (a dict: a set's order could differ on replay).
        self._batches: dict[asyncio.Task[None], None] = {}
        self._batch_seq = 0
        self._records_seq = 0
        self._last_report: tuple[object, ...] | None = None
        self._wanted = False  # whether the shard wanted credits when it last looked
        self._fatal: BaseException | None = None
        self._draining = False
        # While the store is down: since when (workflow time) and its last error.
        self._store_down_since = 0.0
        self._store_down_cause = ""
        # Counter values already exported (by this run, or the runs before it).
        self._exported: dict[str, int] = {}
        # Metric instruments, made once per run on first use.
        self._meter: tuple[dict[str, MetricCounter], dict[str, MetricGauge]] | None = None
        self._generation = 0
        self._size = RunSize(events_per_run=shard.spec.history_events_per_run)
        self._input = shard
        self._spec = shard.spec
        self._engine = ShardEngine(
            shard.spec,
            shard=shard.shard,
            shard_count=shard.shard_count,
            clock=lambda: workflow.now().timestamp(),
            random=lambda: workflow.random().random(),
            incremental=shard.previous_crawl is not None,
            generation=shard.checkpoint.generation if shard.checkpoint else 0,
        )
        self._size.note(shard)
        if shard.checkpoint is not None:
            self._restore_counters(shard.checkpoint)

    @workflow.signal
    def enqueue(self, message: Enqueue) -> None:
        """Idempotent: a message is applied once, in ``seq`` order."""
        self._size.note(message)
        if message.seq > self._processed_seq:
            self._inbox[message.seq] = message
            self._dirty = True

    @workflow.signal
    def links(self, message: LinkMessage) -> None:
        """Links this shard owns, from another shard; applied once (``LinkCounts``)."""
        self._size.note(message)
        self._link_inbox.append(message)
        self._dirty = True

    @workflow.signal
    def finish(self, cancel: bool) -> None:
        self._finish = True
        self._cancel = self._cancel or cancel
        self._dirty = True

    @workflow.signal
    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._dirty = True

    @workflow.query
    def totals(self) -> ShardTotals:
        return self._totals()

    @workflow.query
    def hosts(self, limit: int) -> dict[str, HostStats]:
        """The ``limit`` busiest hosts, and every parked or abandoned one, for live status."""
        return self._engine.busiest_hosts(limit)

    @workflow.signal
    def proxy_grants(self, message: ProxyGrants) -> None:
        """Proxy slots from the crawl's broker, for hosts that asked."""
        self._size.note(message)
        self._engine.proxy_grants(message)
        self._dirty = True

    @workflow.query
    def fleets(self) -> dict[str, int]:
        """Activities in flight on each fleet the routes name, for live status (which asks
        Temporal whether any worker serves them)."""
        return self._engine.fleet_load()

    @workflow.run
    async def run(self, shard: ShardInput) -> ShardResult:
        # Stored once by the parent (prepare_crawl); activity inputs name them by digest.
        self._fetch = FetchOptions.from_spec(shard.spec)
        self._fetch_digest = self._fetch.digest()
        self._parent = crawl_parent("DomainShardWorkflow")
        try:
            if shard.checkpoint is not None:
                await self._restore_segments(shard.checkpoint)
            self._size.started()
            result = await self._crawl()
        except CANCELLED:
            raise
        except Exception as exc:
            # A parent run that did not start this shard cannot see it fail: tell it.
            failure = ShardFailure(shard=shard.shard, message=root_cause(exc))
            await self._parent.signal("shard_failed", failure)
            raise
        await self._parent.signal("shard_finished", result)
        return result

    async def _crawl(self) -> ShardResult:
        while True:
            self._dirty = False
            if self._fatal is not None:
                raise self._fatal
            if self._reading_previous() and not self._draining:
                await self._load_previous()
            self._apply_inbox()
            self._dispatch()
            await self._talk_to_broker()
            if self._engine.has_records():
                await self._write_records()
            self._export_metrics()
            await self._report()
            if self._finish:
                break
            if self._size.should_continue_as_new():
                self._draining = True
                # A batch that landed while reporting may have left links to send first.
                if not self._batches and not self._engine.has_forwards():
                    await self._continue_as_new()
                    continue
            if self._reading_previous() and not self._draining:
                continue  # more of the previous crawl's URLs to queue first
            wake = self._next_wake()
            if wake == timedelta(0):
                continue  # a wait ended while reporting: dispatch again first
            # The alarm means a resting host may take a lease, or a retry may go, now.
            self._arm(wake)
            await workflow.wait_condition(lambda: self._dirty)
        self._arm(None)
        await self._land_in_flight()
        await self._talk_to_broker(closing=True)
        await self._write_records()
        hosts = await self._save_segments(
            "final", "hosts", pack_records(self._engine.export("hosts")), self._generation + 1
        )
        return ShardResult(
            shard=self._input.shard,
            totals=self._totals(),
            hosts_segments=hosts,
            unfetched=self._engine.frontier.queued(),
            series=self._engine.stats.series,
        )

    async def _land_in_flight(self) -> None:
        """Let running batches finish and be counted; on cancel, cut them off after a grace
        period so that a crawl whose workers are gone still stops."""
        timeout = CANCEL_GRACE if self._cancel else None
        try:
            await workflow.wait_condition(lambda: not self._batches, timeout=timeout)
        except TimeoutError:
            for task in list(self._batches):
                task.cancel()
            await workflow.wait_condition(lambda: not self._batches)

    async def _talk_to_broker(self, *, closing: bool = False) -> None:
        """What the engine has for the proxy broker (asks, leases given back, what the
        fetches through each proxy came to), in one message; the last one says so."""
        router = self._engine.proxies
        if not brokered(self._spec.proxies) or not (router.has_message() or closing):
            return
        message = router.take_message()
        message.closing = closing
        self._size.note(message)
        broker = workflow.get_external_workflow_handle(broker_workflow_id(self._input.crawl_id))
        await broker.signal("asks", message)

    # -- incoming URLs -------------------------------------------------------------------------

    def _apply_inbox(self) -> None:
        while self._processed_seq + 1 in self._inbox:
            message = self._inbox.pop(self._processed_seq + 1)
            self._processed_seq = message.seq
            self._engine.add_credits(message.credits)
            for task in message.urls:
                if message.seeds:
                    self._engine.add_seed(task)
                else:
                    self._engine.accept(task, is_link=True)
        links, self._link_inbox = self._link_inbox, []
        for link_message in links:
            if self._links.apply(link_message.sender, link_message.seq):
                for task in link_message.tasks():
                    self._engine.accept(task, is_link=True)

    def _reading_previous(self) -> bool:
        """Whether the previous crawl's item files (incremental crawl) are not all read."""
        return self._previous_next < self._input.previous_files

    async def _load_previous(self) -> None:
        """A page of the previous crawl's URLs (incremental crawl): queued like seeds, so that
        every page of it is asked for again, conditionally."""
        assert self._input.previous_crawl is not None
        request = PreviousRequest(
            output=self._spec.output,
            crawl_id=self._input.crawl_id,
            previous_crawl=self._input.previous_crawl,
            shard=self._input.shard,
            start=self._previous_next,
        )
        page = await self._store_activity("previous_urls", request, PreviousPage)
        self._size.note(page)
        self._previous_next = page.next
        for task in page.urls:
            self._engine.route(task, is_link=False)

    # -- activities the engine plans -----------------------------------------------------------

    def _dispatch(self) -> None:
        """Run what the engine plans, unless dispatch is off: paused, finishing, draining for
        continue-as-new, or waiting for the store."""
        if self._paused or self._finish or self._draining or self._store_down_since:
            return
        plan = self._engine.plan()
        for parts in plan.batches:
            self._batch_seq += 1
            self._start(self._run_batch(self._batch_seq, parts))
        for targets in plan.robots:
            self._start(self._fetch_robots(targets))
        for sitemaps in plan.sitemaps:
            self._start(self._fetch_sitemaps(sitemaps))

    def _start(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._batches[task] = None
        task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        """Nobody awaits a batch task, so its failure is kept here for the main loop to raise."""
        self._batches.pop(task, None)
        if not task.cancelled() and task.exception() is not None and self._fatal is None:
            self._fatal = task.exception()
        self._dirty = True

    async def _fetch_robots(self, targets: list[RobotsTarget]) -> None:
        request = RobotsRequest(
            crawl_id=self._input.crawl_id,
            origins=targets,
            output=self._spec.output,
            fetch_digest=self._fetch_digest,
        )
        try:
            results = (
                await self._activity(
                    "fetch_robots",
                    request,
                    RobotsResults,
                    timeout=_documents_timeout(self._fetch, min(len(request.origins), 3)),
                    retry_policy=ROBOTS_RETRY,
                    heartbeat=True,
                    task_queue=self._fetch_queue(targets[0].origin),
                )
            ).results
        except ActivityError as exc:
            _raise_if_final(exc)
            workflow.logger.warning(
                "robots.txt of %d origins not fetched: %s", len(targets), exc.cause
            )
            results = None
        self._engine.robots_landed(targets, results)

    async def _fetch_sitemaps(self, targets: list[SitemapTarget]) -> None:
        """Read sitemaps, then their entries from the store, a segment at a time."""
        request = SitemapRequest(
            crawl_id=self._input.crawl_id,
            output=self._spec.output,
            fetch_digest=self._fetch_digest,
            targets=targets,
        )
        try:
            results = (
                await self._activity(
                    "fetch_sitemaps",
                    request,
                    SitemapResults,
                    # A 50,000-URL sitemap writes a few dozen segments: three slow calls' worth.
                    timeout=_documents_timeout(self._fetch, 3),
                    retry_policy=ROBOTS_RETRY,
                    heartbeat=True,
                    task_queue=self._fetch_queue(targets[0].url),
                )
            ).results
        except ActivityError as exc:
            _raise_if_final(exc)
            workflow.logger.warning("%d sitemaps not read: %s", len(targets), exc.cause)
            results = [SitemapResult(error=SITEMAP_FETCH_FAILED) for _ in targets]
        for target, result in zip(targets, results, strict=True):
            for key in result.segments:
                records = unpack_records(await self._load_segment(key))
                self._engine.sitemap_entries(target, records)
        self._engine.sitemaps_landed(targets, results)

    async def _run_batch(self, seq: int, parts: list[HostSlice]) -> None:
        tasks = [task for part in parts for task in part.tasks]
        request = BatchRequest(
            crawl_id=self._input.crawl_id,
            shard=self._input.shard,
            batch_id=f"s{self._input.shard:04d}-b{seq:07d}",
            urls=tasks,
            slices=[self._engine.batch_slice(part) for part in parts],
            spider=self._spec.spider,
            output=self._spec.output,
            fetch_digest=self._fetch_digest,
            previous_crawl=self._input.previous_crawl,
        )
        self._size.note(request)
        try:
            # The same request again after a store outage: the same batch id, so the same
            # items keys, which a write that landed unseen before the outage is replaced by.
            result = await self._activity(
                "crawl_batch",
                request,
                BatchResult,
                timeout=_batch_timeout(request, self._fetch),
                retry_policy=BATCH_RETRY,
                heartbeat=True,
                task_queue=self._fetch_queue(parts[0].origin),
            )
        except CANCELLED:
            self._engine.cut_off(parts)
            raise
        except ActivityError as exc:
            _raise_if_final(exc)
            cause = exc.cause
            if isinstance(cause, TemporalCancelledError):
                self._engine.cut_off(parts)
                return
            hosts = ", ".join(part.origin for part in parts[:3])
            more = f" and {len(parts) - 3} more" if len(parts) > 3 else ""
            raise ApplicationError(
                f"batch {request.batch_id} ({len(tasks)} URLs of {hosts}{more}) failed "
                f"{BATCH_RETRY.maximum_attempts} times, the last with {cause}: the crawl "
                "stops rather than drop its URLs",
                type=BATCH_FAILED,
                non_retryable=True,
            ) from exc
        self._size.note(result)
        if result.segments:
            outcomes, links = unpack_batch_result(
                [await self._load_segment(key) for key in result.segments]
            )
            result = result.model_copy(update={"outcomes": outcomes, "links": links})
        self._engine.landed(parts, result)

    async def _write_records(self) -> None:
        """Records of URLs that ended in the shard (a host given up on, a batch cut off),
        into the crawl's items: a file per origin and write, named by the shard and a
        sequence, so a retried write replaces its own file."""
        for origin, records in self._engine.take_records().items():
            for start in range(0, len(records), RECORDS_PER_FILE):
                self._records_seq += 1
                name = f"s{self._input.shard:04d}-ended-{self._records_seq:06d}"
                lines = records[start : start + RECORDS_PER_FILE]
                data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines)
                write = SegmentWrite(
                    output=self._spec.output,
                    key=layout.items_key(self._input.crawl_id, origin, name),
                    data=data.encode(),
                )
                self._size.note(write)
                await self._store_activity("save_segment", write)

    # -- the store -----------------------------------------------------------------------------

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

    async def _activity(
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

    def _fetch_queue(self, url: str) -> str | None:
        """The task queue of the fleet that fetches ``url``'s host; None: this shard's."""
        fleet = self._engine.fetch_queue(url)
        return None if fleet is None else fetch_task_queue(workflow.info().task_queue, fleet)

    async def _store_activity(
        self, name: str, request: object, result_type: type[T] | None = None
    ) -> T:
        """A claim-check activity (segments, the previous crawl's files): one store call,
        retried as long as it fails in other ways, and waited out while the store is down."""
        return await self._activity(
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
        if self._store_down_since:
            await workflow.wait_condition(lambda: not self._store_down_since)
            return
        self._store_down_since = workflow.now().timestamp()
        self._store_down_cause = cause
        workflow.logger.warning("store down, waiting for it: %s", cause)
        try:
            await workflow.execute_activity(
                "check_store",
                StoreProbe(output=self._spec.output),
                start_to_close_timeout=SEGMENT_TIMEOUT,
                retry_policy=STORE_PROBE_RETRY,
            )
        finally:
            self._store_down_since = 0.0
            self._store_down_cause = ""
            self._dirty = True

    # -- reporting -----------------------------------------------------------------------------

    def _totals(self) -> ShardTotals:
        totals = self._engine.totals()
        totals.history_length = workflow.info().get_current_history_length()
        totals.largest_payload_bytes = self._size.largest_payload
        totals.continued_as_new = self._generation
        totals.store_down_since = self._store_down_since
        totals.store_down_cause = self._store_down_cause
        return totals

    def _export_metrics(self) -> None:
        """The shard's health on the workers' Prometheus endpoint (not emitted on replay)."""
        totals = self._engine.stats.totals
        counted = {"links": totals.links_discovered, "duplicates": totals.duplicates}
        levels = dict(self._engine.levels())
        if self._meter is None:
            meter = workflow.metric_meter().with_additional_attributes(
                {"crawl_id": self._input.crawl_id, "shard": str(self._input.shard)}
            )
            self._meter = (
                {n: meter.create_counter(f"shardcrawl_shard_{n}") for n in counted},
                {n: meter.create_gauge(f"shardcrawl_shard_{n}") for n in levels},
            )
        counters, gauges = self._meter
        for name, value in counted.items():
            if value > self._exported.get(name, 0):
                counters[name].add(value - self._exported.get(name, 0))
                self._exported[name] = value
        for name, value in levels.items():
            gauges[name].set(value)

    async def _report(self) -> None:
        """Send the links other shards own, then tell the parent what changed; awaited, so
        a report always follows the link messages it counts."""
        if self._engine.forwards_due():
            await self._send_links()
        idle = not self._reading_previous() and self._engine.idle() and not self._link_inbox
        ask = self._engine.ask_credits(idle=idle)
        # Only what the parent decides on triggers a report: a new want of credits (not how
        # many: a queue that grows meanwhile sends no report; and not the want's end, as the
        # parent grants again only after a report newer than its grant), and idleness, with
        # the last message applied and the link counts. Live counters are read by query.
        sent, applied = self._links.sent(), self._links.applied()
        counts = (self._processed_seq, tuple(sent.items()), tuple(applied.items()))
        key = (idle, counts if idle else None)
        wants, wanted = ask.wants > 0, self._wanted
        self._wanted = wants
        if not ask.returned and key == self._last_report and not (wants and not wanted):
            return
        self._last_report = key
        report = ShardReport(
            shard=self._input.shard,
            processed_seq=self._processed_seq,
            idle=idle,
            wants_credits=ask.wants,
            returned_credits=ask.returned,
            sent=sent,
            applied=applied,
            totals=self._totals(),
        )
        self._size.note(report)
        await self._parent.signal("shard_report", report)

    async def _send_links(self) -> None:
        """Links for other shards, straight to each owner, in messages of at most
        MAX_LINKS_PER_MESSAGE. Once the crawl is finishing they are not sent: the owners
        may have ended (a finish comes only when every shard is idle, or on a cancel)."""
        forwards = self._engine.take_forwards()
        if self._finish:
            dropped = sum(len(tasks) for tasks in forwards.values())
            workflow.logger.info("crawl finishing: %d links for other shards not sent", dropped)
            return
        sends = []
        for owner, tasks in forwards.items():
            handle = workflow.get_external_workflow_handle(
                shard_workflow_id(self._input.crawl_id, owner)
            )
            for start in range(0, len(tasks), MAX_LINKS_PER_MESSAGE):
                chunk = tasks[start : start + MAX_LINKS_PER_MESSAGE]
                message = LinkMessage.of(self._input.shard, self._links.next_seq(owner), chunk)
                self._size.note(message)
                sends.append(handle.signal("links", message))
        await asyncio.gather(*sends)

    def _arm(self, wake: timedelta | None) -> None:
        """Set the alarm for ``wake`` from now (None: no alarm). An alarm already set for
        the same moment is kept: the loop wakes many times (batches landing) while the
        engine waits for one moment (the links' deadline, a rest), and each new timer would
        be two more events and a timer task on the server."""
        deadline = None if wake is None else workflow.now().timestamp() + wake.total_seconds()
        if self._alarm is not None:
            at, task = self._alarm
            if not task.done() and deadline is not None and abs(at - deadline) < 0.001:
                return
            task.cancel()
            self._alarm = None
        if deadline is not None and wake is not None:
            self._alarm = (deadline, asyncio.create_task(self._ring(wake)))

    async def _ring(self, wake: timedelta) -> None:
        await workflow.sleep(wake)
        self._dirty = True

    def _next_wake(self) -> timedelta | None:
        """When the engine next has something to do by the clock (zero: already due). None
        while dispatch is off (paused, draining for continue-as-new, waiting on the store):
        then only a message, a landing batch or the store's return wakes the shard."""
        if self._paused or self._draining or self._store_down_since:
            return None
        seconds = self._engine.next_wake()
        return None if seconds is None else timedelta(seconds=seconds)

    # -- continue-as-new with claim-checked state ------------------------------------------------

    async def _continue_as_new(self) -> None:
        """Store the state and continue as new; returns only if told to finish meanwhile."""
        generation = self._generation + 1
        self._apply_inbox()
        engine = self._engine
        seen = await self._save_segments(
            "state", "seen", pack_fingerprints(engine.frontier.seen_bytes()), generation
        )
        segments: dict[str, Any] = {
            STATE_FIELDS[kind]: await self._save_segments(
                "state", kind, pack_records(engine.export(kind)), generation
            )
            for kind in STATE_KINDS
        }
        checkpoint = ShardCheckpoint(
            generation=generation,
            processed_seq=self._processed_seq,
            credits=engine.credits,
            paused=self._paused,
            batch_seq=self._batch_seq,
            records_seq=self._records_seq,
            totals=engine.stats.totals.model_copy(
                update={"largest_payload_bytes": self._size.largest_payload}
            ),
            seen_segments=seen,
            resting=engine.resting(),
            previous_next=self._previous_next,
            series=engine.stats.series,
            **segments,
        )
        if self._finish:
            return
        # Nothing awaits from here on: every message that arrived while saving is either
        # applied (none: applying happens in the loop) or carried over below.
        checkpoint.paused = self._paused
        checkpoint.pending = [
            self._inbox[seq] for seq in sorted(self._inbox) if seq > self._processed_seq
        ]
        checkpoint.pending_links = self._link_inbox
        checkpoint.link_counts = self._links.export()
        next_input = self._input.model_copy(update={"checkpoint": checkpoint})
        self._size.note(next_input)
        self._arm(None)
        workflow.continue_as_new(next_input)

    async def _save_segments(
        self, stage: str, kind: str, segments: Iterable[bytes], generation: int
    ) -> list[str]:
        """One save activity per segment, each awaited before the next is packed."""
        keys = []
        for part, data in enumerate(segments):
            key = layout.shard_state_key(
                self._input.crawl_id, self._input.shard, generation, f"{stage}-{kind}", part
            )
            request = SegmentWrite(output=self._spec.output, key=key, data=data)
            self._size.note(request)
            await self._store_activity("save_segment", request)
            keys.append(key)
        return keys

    async def _load_segment(self, key: str) -> bytes:
        result = await self._store_activity(
            "load_segment", SegmentRead(output=self._spec.output, key=key), SegmentData
        )
        self._size.note(result)
        return result.data

    def _restore_counters(self, checkpoint: ShardCheckpoint) -> None:
        self._generation = checkpoint.generation
        self._size.carry(checkpoint.totals.largest_payload_bytes)
        self._processed_seq = checkpoint.processed_seq
        self._engine.credits = checkpoint.credits
        self._paused = checkpoint.paused
        self._batch_seq = checkpoint.batch_seq
        self._records_seq = checkpoint.records_seq
        self._previous_next = checkpoint.previous_next
        self._engine.stats.restore(checkpoint.totals, {}, series=checkpoint.series)
        self._exported = {
            "links": checkpoint.totals.links_discovered,
            "duplicates": checkpoint.totals.duplicates,
        }
        self._engine.restore_resting(checkpoint.resting)
        for message in checkpoint.pending:
            self.enqueue(message)
        self._links.restore(checkpoint.link_counts)
        for link_message in checkpoint.pending_links:
            self.links(link_message)

    async def _restore_segments(self, checkpoint: ShardCheckpoint) -> None:
        """The large state, from the store; signals meanwhile only fill the inbox."""
        engine = self._engine
        seen = [await self._load_segment(key) for key in checkpoint.seen_segments]
        engine.frontier.restore_seen(b"".join(seen))
        del seen
        for kind in STATE_KINDS:
            for key in getattr(checkpoint, STATE_FIELDS[kind]):
                engine.restore(kind, unpack_records(await self._load_segment(key)))
        engine.look_at_everything()
        # Loaded into history now, so the store's copy is no longer needed.
        delete = SegmentDelete(
            output=self._spec.output,
            prefix=layout.shard_state_prefix(
                self._input.crawl_id, self._input.shard, checkpoint.generation
            ),
        )
        await self._store_activity("delete_segments", delete)
