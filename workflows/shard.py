"""DomainShardWorkflow: the one owner of its hosts' frontier, seen-set and politeness budget.

The shard takes URLs and page credits from its parent (``enqueue``), cuts per-origin batches
within each host's budget, runs ``crawl_batch`` activities, dedups what comes back and sends
links owned by other shards, its idleness and its counters to the parent (``shard_report``).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from shardcrawl import urls
    from shardcrawl.contracts import (
        BATCH_FAILED,
        ROBOTS_FETCH_FAILED,
        BatchRequest,
        BatchResult,
        Enqueue,
        FetchOptions,
        FetchOutcome,
        RobotsRequest,
        RobotsResult,
        ShardInput,
        ShardReport,
        ShardResult,
        ShardTotals,
        UrlTask,
    )
    from shardcrawl.frontier import Frontier, RecentSet
    from shardcrawl.politeness import Lease, Politeness
    from shardcrawl.shard_stats import ShardStats

__all__ = ["DomainShardWorkflow"]

# A worker that dies is noticed within HEARTBEAT_TIMEOUT and its batch runs elsewhere.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=["UnknownSpider"],
)
ROBOTS_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
MAX_BATCHES_IN_FLIGHT = 64
CANCEL_GRACE = timedelta(seconds=30)
# Foreign URLs this shard remembers having forwarded, so a link seen on many pages crosses to
# its owner once, not once per page. Only an optimisation: the owner still dedups everything.
FORWARDED_MEMORY = 200_000


def _batch_timeout(request: BatchRequest) -> timedelta:
    """Long enough for every URL to time out one after another within its lease, plus slack."""
    per_url = request.fetch.download_timeout_seconds + request.delay_seconds
    return timedelta(seconds=60 + per_url * len(request.urls) / request.concurrency)


@workflow.defn(name="DomainShardWorkflow")
class DomainShardWorkflow:
    def __init__(self) -> None:
        self._inbox: dict[int, Enqueue] = {}
        self._processed_seq = 0
        self._credits = 0
        self._finish = False
        self._cancel = False
        self._paused = False
        self._dirty = False
        self._frontier = Frontier()
        self._forwarded = RecentSet(capacity=FORWARDED_MEMORY)
        self._stats = ShardStats()
        self._outbox: list[UrlTask] = []
        self._robots: dict[str, RobotsResult | None] = {}
        self._batches: set[asyncio.Task[None]] = set()
        self._batch_seq = 0
        self._last_report: tuple[object, ...] | None = None
        self._fatal: BaseException | None = None

    @workflow.signal
    def enqueue(self, message: Enqueue) -> None:
        """Idempotent: a message is applied once, in ``seq`` order."""
        if message.seq > self._processed_seq:
            self._inbox[message.seq] = message
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

    @workflow.run
    async def run(self, shard: ShardInput) -> ShardResult:
        self._input = shard
        self._spec = shard.spec
        self._fetch = FetchOptions.from_spec(shard.spec)
        self._domains = shard.spec.effective_allowed_domains()
        self._politeness = Politeness(
            max_concurrency=shard.spec.concurrency_per_host,
            delay_seconds=shard.spec.delay_seconds,
        )
        parent = workflow.info().parent
        if parent is None:
            raise ApplicationError(
                "DomainShardWorkflow runs only as a child of CrawlWorkflow",
                type="NotAChild",
                non_retryable=True,
            )
        self._parent = workflow.get_external_workflow_handle(parent.workflow_id)

        while True:
            self._dirty = False
            if self._fatal is not None:
                raise self._fatal
            self._apply_inbox()
            self._dispatch()
            await self._report()
            if self._finish:
                break
            # A timeout means a resting host may take a lease now.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._dirty, timeout=self._next_wake())
        await self._land_in_flight()

        return ShardResult(
            shard=shard.shard,
            totals=self._totals(),
            hosts=self._stats.hosts,
            unfetched=self._frontier.queued(),
        )

    async def _land_in_flight(self) -> None:
        """Let running batches finish and be counted; on cancel, cut them off after a grace
        period so that a crawl whose workers are gone still stops."""
        timeout = CANCEL_GRACE if self._cancel else None
        try:
            await workflow.wait_condition(lambda: not self._batches, timeout=timeout)
        except TimeoutError:
            for task in self._batches:
                task.cancel()
            await workflow.wait_condition(lambda: not self._batches)

    # -- incoming URLs -------------------------------------------------------------------------

    def _apply_inbox(self) -> None:
        while self._processed_seq + 1 in self._inbox:
            message = self._inbox.pop(self._processed_seq + 1)
            self._processed_seq = message.seq
            self._credits += message.credits
            for task in message.urls:
                self._accept(task, is_link=not message.seeds)

    def _route(self, task: UrlTask) -> None:
        """Scope and depth checks, then to the owner: this shard or, via the parent, another."""
        if not urls.in_allowed_domains(task.url, self._domains):
            self._stats.totals.out_of_scope += 1
            return
        if task.depth > self._spec.max_depth:
            self._stats.totals.too_deep += 1
            return
        owner = urls.shard_of(urls.origin(task.url), self._input.shard_count)
        if owner == self._input.shard:
            self._accept(task, is_link=True)
        elif self._forwarded.add(task.url, task.depth):
            self._outbox.append(task)
        else:
            self._stats.record_link(task.url, duplicate=True)

    def _accept(self, task: UrlTask, *, is_link: bool) -> None:
        added = self._frontier.offer(task)
        if is_link:
            self._stats.record_link(task.url, duplicate=not added)

    # -- outgoing batches ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self._paused or self._finish:
            return
        now = workflow.now().timestamp()
        for origin in self._frontier.origins():
            if len(self._batches) >= MAX_BATCHES_IN_FLIGHT:
                return
            # robots.txt is fetched as soon as an origin has work, credits or not, so that
            # the first batch need not wait for it when credits arrive.
            if self._spec.obey_robots_txt and origin not in self._robots:
                self._robots[origin] = None
                self._start(self._fetch_robots(origin))
                continue
            if self._spec.obey_robots_txt and self._robots[origin] is None:
                continue
            while self._credits > 0 and len(self._batches) < MAX_BATCHES_IN_FLIGHT:
                queued = self._frontier.queued_at(origin)
                lease = self._politeness.lease(
                    urls.hostname(origin),
                    queued=min(queued, self._credits),
                    batch_size=self._spec.batch_size,
                    now=now,
                )
                if lease is None:
                    break
                tasks = self._frontier.pop(origin, min(self._spec.batch_size, self._credits))
                self._credits -= len(tasks)
                self._start(self._run_batch(origin, lease, tasks))

    def _start(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._batches.add(task)
        task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        """Nobody awaits a batch task, so its failure is kept here for the main loop to raise."""
        self._batches.discard(task)
        if not task.cancelled() and task.exception() is not None and self._fatal is None:
            self._fatal = task.exception()
        self._dirty = True

    async def _fetch_robots(self, origin: str) -> None:
        request = RobotsRequest(
            crawl_id=self._input.crawl_id,
            origin=origin,
            output=self._spec.output,
            fetch=self._fetch,
        )
        try:
            result = await workflow.execute_activity(
                "fetch_robots",
                request,
                result_type=RobotsResult,
                start_to_close_timeout=timedelta(
                    seconds=60 + 6 * self._fetch.download_timeout_seconds
                ),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ROBOTS_RETRY,
            )
        except ActivityError as exc:
            workflow.logger.warning("robots.txt of %s not fetched: %s", origin, exc.cause)
            result = RobotsResult(error=ROBOTS_FETCH_FAILED)
        self._robots[origin] = result

    async def _run_batch(self, origin: str, lease: Lease, tasks: list[UrlTask]) -> None:
        self._batch_seq += 1
        robots = self._robots.get(origin) or RobotsResult()
        request = BatchRequest(
            crawl_id=self._input.crawl_id,
            shard=self._input.shard,
            batch_id=f"s{self._input.shard:04d}-b{self._batch_seq:07d}",
            origin=origin,
            urls=tasks,
            spider=self._spec.spider,
            output=self._spec.output,
            concurrency=lease.slots,
            delay_seconds=lease.delay_seconds,
            robots_key=robots.key,
            robots_disallow_all=robots.disallow_all,
            fetch=self._fetch,
        )
        try:
            result = await workflow.execute_activity(
                "crawl_batch",
                request,
                result_type=BatchResult,
                start_to_close_timeout=_batch_timeout(request),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=BATCH_RETRY,
            )
        except ActivityError as exc:
            if isinstance(exc.cause, ApplicationError) and exc.cause.non_retryable:
                raise ApplicationError(
                    exc.cause.message, type=exc.cause.type, non_retryable=True
                ) from exc
            workflow.logger.warning("batch %s lost: %s", request.batch_id, exc.cause)
            result = BatchResult(
                batch_id=request.batch_id,
                outcomes=[FetchOutcome(url=t.url, error=BATCH_FAILED) for t in tasks],
                links=[],
                items_key="",
                items_written=0,
                attempt=BATCH_RETRY.maximum_attempts,
            )
        finally:
            self._politeness.release(lease, now=workflow.now().timestamp())
        self._absorb(origin, tasks, result)

    def _absorb(self, origin: str, tasks: list[UrlTask], result: BatchResult) -> None:
        self._stats.record_batch(attempt=result.attempt, origin=origin)
        by_url = {t.url: t for t in tasks}
        for outcome in result.outcomes:
            self._stats.record_outcome(outcome)
            source = by_url.get(outcome.url)
            if outcome.redirect_to and source is not None:
                self._follow_redirect(source, outcome.redirect_to)
        for link in result.links:
            self._route(UrlTask(url=link.url, depth=link.depth))

    def _follow_redirect(self, source: UrlTask, target: str) -> None:
        if source.redirects >= self._spec.max_redirects:
            self._stats.totals.redirects_exceeded += 1
            return
        self._route(UrlTask(url=target, depth=source.depth, redirects=source.redirects + 1))

    # -- reporting -----------------------------------------------------------------------------

    def _idle(self) -> bool:
        return not self._batches and (self._frontier.queued() == 0 or self._credits == 0)

    def _totals(self) -> ShardTotals:
        totals = self._stats.totals.model_copy()
        totals.in_flight_batches = len(self._batches)
        totals.queued = self._frontier.queued()
        totals.seen = self._frontier.seen_count()
        return totals

    async def _report(self) -> None:
        """Tell the parent what changed; awaited, so reports arrive in order."""
        idle = self._idle()
        queued = self._frontier.queued()
        returned = 0
        if idle and queued == 0 and self._credits > 0:
            returned, self._credits = self._credits, 0
        # Ask for a whole chunk, and only when running low, so that the request changes rarely.
        low = self._credits < self._spec.batch_size and queued > self._credits
        wants = self._spec.batch_size * max(2, self._spec.concurrency_per_host) if low else 0
        # Only what the parent decides on triggers a report: links to route, credits, and
        # idleness (with the last message applied). Live counters are read by query instead.
        key = (idle, wants, self._processed_seq if idle else None)
        if not self._outbox and not returned and key == self._last_report:
            return
        self._last_report = key
        forwards, self._outbox = self._outbox, []
        report = ShardReport(
            shard=self._input.shard,
            processed_seq=self._processed_seq,
            idle=idle,
            wants_credits=wants,
            returned_credits=returned,
            forwards=forwards,
            totals=self._totals(),
        )
        await self._parent.signal("shard_report", report)

    def _next_wake(self) -> timedelta | None:
        """When a resting host may take a lease again, if that is what the shard waits for."""
        if self._paused or self._credits <= 0:
            return None
        now = workflow.now().timestamp()
        waits = [
            self._politeness.ready_at(urls.hostname(o)) - now for o in self._frontier.origins()
        ]
        future = [w for w in waits if w > 0]
        return timedelta(seconds=min(future)) if future else None
