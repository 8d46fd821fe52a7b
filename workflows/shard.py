"""DomainShardWorkflow: the one owner of its hosts' frontier, seen-set and politeness budget.

The shard takes URLs and page credits from its parent (``enqueue``), cuts batches of many
hosts' slices, each within its host's budget, runs ``crawl_batch`` activities, dedups what
comes back and sends links owned by other shards, its idleness and its counters to the
parent (``shard_report``).

Before its history grows large it continues as new: it stops dispatching, lets its batches
land, writes its seen-set, frontier, per-host counters and robots results to the store as
segments (a claim-check: history holds only their keys), and hands the keys, its small
counters and any message that arrived meanwhile to its next run. When told to finish, it
stores its per-host counters the same way and signals its result to the parent, which may
itself be a later run than the one that started the shard.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import MetricCounter, MetricGauge, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError

with workflow.unsafe.imports_passed_through():
    from shardcrawl import layout, urls
    from shardcrawl.batch_cutter import BatchCutter, HostSlice
    from shardcrawl.blocks import holds_host
    from shardcrawl.contracts import (
        BATCH_FAILED,
        DEFERRED,
        HOST_ABANDONED,
        ROBOTS_FETCH_FAILED,
        STORE_UNAVAILABLE,
        BatchRequest,
        BatchResult,
        BatchSlice,
        Enqueue,
        FetchOptions,
        FetchOutcome,
        HostStats,
        PreviousPage,
        PreviousRequest,
        ProxyLease,
        ProxyStats,
        RobotsRequest,
        RobotsResult,
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
        StoreProbe,
        UrlTask,
    )
    from shardcrawl.errors import root_cause
    from shardcrawl.frontier import Frontier, RecentSet
    from shardcrawl.host_pressure import HostPressure
    from shardcrawl.origin_watch import OriginWatch
    from shardcrawl.politeness import Lease, Politeness
    from shardcrawl.proxy_health import PROXY_FAILURES, is_proxy_failure
    from shardcrawl.proxy_router import ProxyRouter
    from shardcrawl.retry_policy import backoff_seconds, will_retry
    from shardcrawl.retry_queue import RetryQueue
    from shardcrawl.segments import (
        INLINE_PAYLOAD_BYTES,
        pack_fingerprints,
        pack_records,
        unpack_batch_result,
        unpack_records,
    )
    from shardcrawl.shard_stats import ShardStats
    from workflows.run_size import RunSize

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
# Proxies a robots.txt fetch may fail through before the failure stands for the host.
ROBOTS_PROXY_TRIES = 3
# Origins whose robots.txt one fetch_robots activity fetches (side by side, in one crawler).
ROBOTS_PER_ACTIVITY = 100
MAX_BATCHES_IN_FLIGHT = 64
CANCEL_GRACE = timedelta(seconds=30)
# Foreign URLs this shard remembers having forwarded, so a link seen on many pages crosses to
# its owner once, not once per page. Only an optimisation: the owner still dedups everything.
FORWARDED_MEMORY = 200_000
SEGMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[STORE_UNAVAILABLE],
)
# One store call may take boto3's four attempts at its 5 s connect and 30 s read timeouts.
STORE_CALL_SECONDS = 180
SEGMENT_TIMEOUT = timedelta(seconds=STORE_CALL_SECONDS)
# Forwarded URLs per report, and URL text per batch: each message stays one small payload.
MAX_FORWARDS_PER_REPORT = 1000
# Links for other shards wait for this many, or this long, while batches are in flight: each
# report is four history events and a workflow task on both sides, so few large ones pay.
FORWARD_BATCH = 500
FORWARD_WAIT = timedelta(seconds=2)
# Retry batches of all hosts together hold at most this share of the shard's batch slots, so
# failing hosts cannot crowd out new work on healthy ones (each host's own retry budget is
# the spec's retry.budget_share of its concurrency).
MAX_RETRY_BATCHES = max(1, MAX_BATCHES_IN_FLIGHT // 5)
MAX_BATCH_URL_BYTES = INLINE_PAYLOAD_BYTES // 2
CANCELLED = (asyncio.CancelledError, TemporalCancelledError)


def _raise_if_final(exc: ActivityError) -> None:
    """An activity that failed for good (a spider that cannot run, a store that refuses)
    fails the shard with the activity's own type and message, not Temporal's wrapper."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from exc


def _batch_timeout(request: BatchRequest) -> timedelta:
    """Long enough for every URL of the slowest host to time out one after another within
    its lease (hosts fetch side by side), and for a few slow store calls. (A store that is
    down fails its first call, so the items files of many origins need no call's worst case
    each; a worker that dies is noticed by its heartbeat, not by this.)"""
    timeout = request.fetch.download_timeout_seconds
    fetching = max(
        (timeout + part.delay_seconds) * part.count / part.concurrency for part in request.slices
    )
    store_calls = min(len(request.slices), 3)
    return timedelta(seconds=60 + STORE_CALL_SECONDS * store_calls + fetching)


def _robots_timeout(request: RobotsRequest) -> timedelta:
    """Every origin's robots.txt side by side, redirects included, then a few slow store
    calls (as for a batch)."""
    fetching = 6 * request.fetch.download_timeout_seconds
    store_calls = min(len(request.origins), 3)
    return timedelta(seconds=60 + fetching + STORE_CALL_SECONDS * store_calls)


@workflow.defn(name="DomainShardWorkflow")
class DomainShardWorkflow:
    @workflow.init
    def __init__(self, shard: ShardInput) -> None:
        """Runs before any signal handler, so a signal that arrives with a new run's first
        task already sees the checkpoint's counters and flags (and wins over them)."""
        self._inbox: dict[int, Enqueue] = {}
        self._processed_seq = 0
        self._credits = 0
        self._finish = False
        self._cancel = False
        self._paused = False
        self._dirty = False
        self._frontier = Frontier()
        self._retries = RetryQueue()
        self._watch = OriginWatch()
        self._hosts_of: dict[str, str] = {}
        # Per host: origins that found it busy, touched when its batch lands.
        self._busy_waiters: dict[str, dict[str, None]] = {}
        self._retry_batches = 0
        self._forwarded = RecentSet(capacity=FORWARDED_MEMORY)
        self._stats = ShardStats()
        self._outbox: list[UrlTask] = []
        self._outbox_since = 0.0
        self._robots: dict[str, RobotsResult | None] = {}
        self._robots_tries: dict[str, int] = {}
        self._previous_next = 0
        # In-flight batch tasks, in start order (a dict: a set's order could differ on replay).
        self._batches: dict[asyncio.Task[None], None] = {}
        self._batch_seq = 0
        self._last_report: tuple[object, ...] | None = None
        self._fatal: BaseException | None = None
        self._draining = False
        self._dispatched_at = 0.0
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
        self._politeness = Politeness(
            max_concurrency=shard.spec.concurrency_per_host,
            delay_seconds=shard.spec.delay_seconds,
        )
        self._pressure = HostPressure(
            max_concurrency=shard.spec.concurrency_per_host,
            delay_seconds=shard.spec.delay_seconds,
            blocks=shard.spec.blocks,
            retry=shard.spec.retry,
        )
        self._proxies = ProxyRouter(
            shard.spec.proxies, shard=shard.shard, shard_count=shard.shard_count
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
        busiest = sorted(self._stats.hosts.items(), key=lambda kv: (-kv[1].requests, kv[0]))
        return {
            name: stats
            for i, (name, stats) in enumerate(busiest)
            if i < limit or stats.state != "ok"
        }

    @workflow.query
    def proxies(self) -> dict[str, ProxyStats]:
        """Each proxy's health and this shard's use of its share, for live status."""
        return self._proxies.stats(workflow.now().timestamp())

    @workflow.run
    async def run(self, shard: ShardInput) -> ShardResult:
        self._fetch = FetchOptions.from_spec(shard.spec)
        self._domains = shard.spec.effective_allowed_domains()
        parent = workflow.info().parent
        if parent is None:
            raise ApplicationError(
                "DomainShardWorkflow runs only as a child of CrawlWorkflow",
                type="NotAChild",
                non_retryable=True,
            )
        # By workflow id alone: the parent may have continued as new since it started us.
        self._parent = workflow.get_external_workflow_handle(parent.workflow_id)
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
            self._export_metrics()
            await self._report()
            if self._finish:
                break
            if self._size.should_continue_as_new():
                self._draining = True
                # A batch that landed while reporting may have left links to send first.
                if not self._batches and not self._outbox:
                    await self._continue_as_new()
                    continue
            if self._reading_previous() and not self._draining:
                continue  # more of the previous crawl's URLs to queue first
            wake = self._next_wake()
            if wake == timedelta(0):
                continue  # a wait ended while reporting: dispatch again first
            # A timeout means a resting host may take a lease, or a retry may go, now.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._dirty, timeout=wake)
        await self._land_in_flight()
        hosts = await self._save_segments(
            "final", "hosts", self._host_records(), generation=self._generation + 1
        )
        return ShardResult(
            shard=self._input.shard,
            totals=self._totals(),
            hosts_segments=hosts,
            unfetched=self._frontier.queued(),
            proxies=self._proxies.stats(workflow.now().timestamp()),
            series=self._stats.series,
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

    # -- incoming URLs -------------------------------------------------------------------------

    def _apply_inbox(self) -> None:
        while self._processed_seq + 1 in self._inbox:
            message = self._inbox.pop(self._processed_seq + 1)
            self._processed_seq = message.seq
            self._credits += message.credits
            if message.credits > 0:
                self._watch.credits_arrived()
            for task in message.urls:
                self._accept(task, is_link=not message.seeds)

    def _route(self, task: UrlTask, count: int = 1, *, is_link: bool = True) -> None:
        """Scope and depth checks, then to the owner: this shard or, via the parent, another.
        ``count`` is how often a batch linked the URL; all but the first are duplicates."""
        if not urls.in_allowed_domains(task.url, self._domains):
            self._stats.totals.out_of_scope += count
            return
        if task.depth > self._spec.max_depth:
            self._stats.totals.too_deep += count
            return
        for _ in range(count - 1):
            self._stats.record_link(task.url, duplicate=True)
        owner = urls.shard_of(urls.origin(task.url), self._input.shard_count)
        if owner == self._input.shard:
            self._accept(task, is_link=is_link)
        elif self._forwarded.add(task):
            if not self._outbox:
                self._outbox_since = workflow.now().timestamp()
            self._outbox.append(task)
        else:
            self._stats.record_link(task.url, duplicate=True)

    def _accept(self, task: UrlTask, *, is_link: bool) -> None:
        added = self._frontier.offer(task)
        if added:
            self._watch.touch(urls.origin(task.url))
        if is_link:
            self._stats.record_link(task.url, duplicate=not added)

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
            self._route(task, is_link=False)

    # -- outgoing batches ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Cut batches from the hosts that may be ready (``OriginWatch``: what changed, not
        every host): each host's requests are a slice with its own lease, and slices share
        batches (``BatchCutter``), new work and retries apart."""
        if self._paused or self._finish or self._draining or self._store_down_since:
            return
        now = workflow.now().timestamp()
        self._dispatched_at = now
        limits = {"max_requests": self._spec.batch_size, "max_url_bytes": MAX_BATCH_URL_BYTES}
        fresh_cut, retry_cut = BatchCutter(**limits), BatchCutter(**limits)
        robots: list[RobotsTarget] = []
        robots_hosts: set[str] = set()  # one origin of a host per fetch_robots
        due = self._watch.take(now)
        due.sort(key=self._crawl_order)
        for i, origin in enumerate(due):
            if len(self._batches) >= MAX_BATCHES_IN_FLIGHT:
                for rest in due[i:]:
                    self._watch.touch(rest)
                break
            host = self._host_of(origin)
            # robots.txt is fetched as soon as an origin has work, credits or not, so that
            # the first batch need not wait for it when credits arrive. It goes the way the
            # host's pages go (a proxy slot, if the host's route has proxies).
            if self._spec.obey_robots_txt and origin not in self._robots:
                proxies = None
                if host not in robots_hosts:
                    proxies = self._proxies.lease(host, slots=1, now=now)
                if proxies is None:
                    self._watch.touch(origin)  # a proxy slot, or the next pass, frees it
                    continue
                self._robots[origin] = None
                robots.append(RobotsTarget(origin=origin, proxies=proxies))
                robots_hosts.add(host)
                if len(robots) >= ROBOTS_PER_ACTIVITY:
                    self._start(self._fetch_robots(robots))
                    robots, robots_hosts = [], set()
                continue
            if self._spec.obey_robots_txt and self._robots[origin] is None:
                continue  # its robots.txt is on the way, and touches it when it comes
            state = self._pressure.state(host, now)
            if state == "abandoned":
                self._give_up(origin)
                continue
            if state == "parked":
                self._watch.wake_at(origin, self._pressure.host(host).parked_until)
                continue
            if state == "probing":
                started = self._cut(fresh_cut, self._probe(origin, host, now))
            else:
                started = self._cut(fresh_cut, self._fresh_slice(origin, host, now))
                started = started or self._cut(retry_cut, self._retry_slice(origin, host, now))
            if not started:
                self._wait(origin, host, now)
        self._cut(fresh_cut, None, close=True)
        self._cut(retry_cut, None, close=True)
        if robots:
            self._start(self._fetch_robots(robots))

    def _crawl_order(self, origin: str) -> tuple[int, int, int, int, str]:
        """Origins with new work first, shallowest next request first; then retries only."""
        key = self._frontier.order_key(origin)
        return (0, *key, "") if key is not None else (1, 0, 0, 0, origin)

    def _host_of(self, origin: str) -> str:
        host = self._hosts_of.get(origin)
        if host is None:
            host = self._hosts_of[origin] = urls.hostname(origin)
        return host

    def _wait(self, origin: str, host: str, now: float) -> None:
        """An origin the pass looked at and did not dispatch: what it waits for."""
        fresh = self._frontier.queued_at(origin) > 0
        retry_at = self._retries.ready_at(origin)
        if not fresh and retry_at is None:
            return  # no work: new work touches it
        if self._politeness.in_use(host):
            # The host's batch is in flight (perhaps for its other origin): its landing
            # touches this origin.
            self._busy_waiters.setdefault(host, {})[origin] = None
            return
        rest = self._politeness.ready_at(host)
        if rest > now:
            self._watch.wake_at(origin, rest)
            return
        if not self._proxies.available(host, now):
            self._watch.touch(origin)  # proxy slots free with landings or cool-downs
            return
        if retry_at is not None:
            if retry_at > now:
                self._watch.wake_at(origin, retry_at)
            elif self._retry_batches >= MAX_RETRY_BATCHES:
                self._watch.touch(origin)  # a retry batch that lands frees the budget
        if fresh and self._credits <= 0:
            self._watch.wait_for_credits(origin)

    def _cut(self, cutter: BatchCutter, part: HostSlice | None, *, close: bool = False) -> bool:
        """Adds a host's slice to the batch being cut, and starts each batch that is done;
        whether there was a slice."""
        for batch in (cutter.add(part) if part else None, cutter.close() if close else None):
            if batch:
                self._start_batch(batch)
        return part is not None

    def _retry_slice(self, origin: str, host: str, now: float) -> HostSlice | None:
        """Retries whose wait is over, within the host's retry budget and the shard's. (A host
        is in one batch in flight, so one lease per dispatch is all it gets.)"""
        ready = self._retries.ready_count(origin, now)
        if not ready or self._retry_batches >= MAX_RETRY_BATCHES:
            return None
        concurrency, delay = self._pressure.limits(host)
        leased = self._lease(
            host,
            queued=ready,
            now=now,
            max_concurrency=concurrency,
            delay_seconds=delay,
            retry_slots=self._pressure.retry_slots(host),
        )
        if leased is None:
            return None
        tasks = self._retries.ready(origin, now, self._spec.batch_size)
        return HostSlice(origin, *leased, tasks)

    def _fresh_slice(self, origin: str, host: str, now: float) -> HostSlice | None:
        """New work under the host's full lease. Retries whose wait is over ride along, up
        to the host's retry budget, rather than take the host's one batch on their own while
        its new pages wait (a broken URL would otherwise cost its host a batch per attempt)."""
        if self._credits <= 0:
            return None
        concurrency, delay = self._pressure.limits(host)
        leased = self._lease(
            host,
            queued=min(self._frontier.queued_at(origin), self._credits),
            now=now,
            max_concurrency=concurrency,
            delay_seconds=delay,
        )
        if leased is None:
            return None
        retries = self._retries.ready(origin, now, self._pressure.retry_slots(host))
        tasks = self._frontier.pop(
            origin,
            min(self._spec.batch_size - len(retries), self._credits),
            max_url_bytes=MAX_BATCH_URL_BYTES,
        )
        self._credits -= len(tasks)
        return HostSlice(origin, *leased, retries + tasks)

    def _probe(self, origin: str, host: str, now: float) -> HostSlice | None:
        """A parked host whose cool-down is over gets one URL, alone, to see if it still blocks."""
        if (
            self._politeness.in_use(host)
            or self._politeness.ready_at(host) > now
            or not self._proxies.available(host, now)
        ):
            return None
        tasks = self._retries.ready(origin, now, 1)
        if not tasks and self._credits > 0:
            tasks = self._frontier.pop(origin, 1)
            self._credits -= len(tasks)
        if not tasks:
            return None
        _, delay = self._pressure.limits(host)
        leased = self._lease(host, queued=1, now=now, max_concurrency=1, delay_seconds=delay)
        assert leased is not None, "the host was neither busy, resting nor short of proxies"
        return HostSlice(origin, *leased, tasks)

    def _lease(
        self,
        host: str,
        *,
        queued: int,
        now: float,
        max_concurrency: int,
        delay_seconds: float,
        retry_slots: int | None = None,
    ) -> tuple[Lease, list[ProxyLease]] | None:
        """The host's politeness lease and, if it goes through proxies, proxy slots for it;
        None while either is not to be had (the proxies are asked first: taking a politeness
        lease and handing it back would make the host rest for nothing)."""
        if not self._proxies.available(host, now):
            return None
        lease = self._politeness.lease(
            host,
            queued=queued,
            now=now,
            max_concurrency=max_concurrency,
            delay_seconds=delay_seconds,
            retry_slots=retry_slots,
        )
        if lease is None:
            return None
        proxies = self._proxies.lease(host, slots=lease.slots, now=now)
        assert proxies is not None, "available() said a proxy was free"
        return lease, proxies

    def _give_up(self, origin: str) -> None:
        """A host given up on (parked too often): its waiting URLs end as failures."""
        # A waiting retry's last attempt is the one before the attempt it waited for.
        ended = [(t, t.attempt - 1) for t in self._retries.take_all(origin)]
        ended += [(t, 1) for t in self._frontier.pop(origin, self._frontier.queued_at(origin))]
        for task, last_attempt in ended:
            self._stats.record_outcome(
                FetchOutcome(url=task.url, error=HOST_ABANDONED, attempt=max(1, last_attempt))
            )

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

    def _export_metrics(self) -> None:
        """The shard's health on the workers' Prometheus endpoint (not emitted on replay)."""
        totals = self._stats.totals
        counted = {"links": totals.links_discovered, "duplicates": totals.duplicates}
        levels = {
            "queued": self._frontier.queued(),
            "retry_waiting": len(self._retries),
            "batches_in_flight": len(self._batches),
            "parked_hosts": len(self._pressure.parked()),
            "abandoned_hosts": len(self._pressure.abandoned()),
        }
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

    async def _fetch_robots(self, targets: list[RobotsTarget]) -> None:
        request = RobotsRequest(
            crawl_id=self._input.crawl_id,
            origins=targets,
            output=self._spec.output,
            fetch=self._fetch,
        )
        try:
            results = (
                await self._activity(
                    "fetch_robots",
                    request,
                    RobotsResults,
                    timeout=_robots_timeout(request),
                    retry_policy=ROBOTS_RETRY,
                    heartbeat=True,
                )
            ).results
        except ActivityError as exc:
            _raise_if_final(exc)
            workflow.logger.warning(
                "robots.txt of %d origins not fetched: %s", len(targets), exc.cause
            )
            results = [RobotsResult(error=ROBOTS_FETCH_FAILED) for _ in targets]
        finally:
            for target in targets:
                self._proxies.release(target.proxies)
        now = workflow.now().timestamp()
        for target, result in zip(targets, results, strict=True):
            origin = target.origin
            self._watch.touch(origin)
            if target.proxies and result.error in PROXY_FAILURES:
                # The proxy failed, not the host: rest it and ask again, through another one.
                failed = FetchOutcome(url=origin, error=result.error, proxy=target.proxies[0].proxy)
                self._proxies.observe(
                    urls.hostname(origin), [failed], now=now, jitter=workflow.random().random()
                )
                self._robots_tries[origin] = self._robots_tries.get(origin, 0) + 1
                if self._robots_tries[origin] < ROBOTS_PROXY_TRIES:
                    del self._robots[origin]
                    continue
            self._robots[origin] = result

    def _start_batch(self, parts: list[HostSlice]) -> None:
        self._batch_seq += 1
        retry = parts[0].lease.retry
        self._retry_batches += retry
        self._start(self._run_batch(self._batch_seq, parts, retry=retry))

    async def _run_batch(self, seq: int, parts: list[HostSlice], *, retry: bool) -> None:
        tasks = [task for part in parts for task in part.tasks]
        request = BatchRequest(
            crawl_id=self._input.crawl_id,
            shard=self._input.shard,
            batch_id=f"s{self._input.shard:04d}-b{seq:07d}",
            urls=tasks,
            slices=[self._batch_slice(part) for part in parts],
            spider=self._spec.spider,
            output=self._spec.output,
            fetch=self._fetch,
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
                timeout=_batch_timeout(request),
                retry_policy=BATCH_RETRY,
                heartbeat=True,
            )
        except CANCELLED:
            self._requeue(tasks)
            raise
        except ActivityError as exc:
            _raise_if_final(exc)
            cause = exc.cause
            if isinstance(cause, TemporalCancelledError):
                self._requeue(tasks)
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
        finally:
            released = workflow.now().timestamp()
            for part in parts:
                self._politeness.release(part.lease, now=released)
                self._proxies.release(part.proxies)
                self._watch.touch(part.origin)
                for waiter in self._busy_waiters.pop(part.lease.host, {}):
                    self._watch.touch(waiter)
            self._retry_batches -= retry
        self._size.note(result)
        if result.segments:
            outcomes, links = unpack_batch_result(
                [await self._load_segment(key) for key in result.segments]
            )
            result = result.model_copy(update={"outcomes": outcomes, "links": links})
        self._absorb(parts, result)

    def _batch_slice(self, part: HostSlice) -> BatchSlice:
        robots = self._robots.get(part.origin) or RobotsResult()
        return BatchSlice(
            origin=part.origin,
            count=len(part.tasks),
            concurrency=sum(p.slots for p in part.proxies) if part.proxies else part.lease.slots,
            delay_seconds=part.lease.delay_seconds,
            robots_key=robots.key,
            robots_disallow_all=robots.disallow_all,
            proxies=part.proxies,
        )

    def _absorb(self, parts: list[HostSlice], result: BatchResult) -> None:
        """A batch's outcomes, host by host (each host's own holds, retries, pressure and
        proxy health), then the links it found."""
        self._stats.record_batch(
            attempt=result.attempt,
            origins=[p.origin for p in parts],
            now=workflow.now().timestamp(),
            queued=self._frontier.queued(),
        )
        starts = list(itertools.accumulate((len(p.tasks) for p in parts), initial=0))
        by_part: list[list[FetchOutcome]] = [[] for _ in parts]
        for outcome in result.outcomes:
            by_part[bisect.bisect_right(starts, outcome.task) - 1].append(outcome)
        for part, start, outcomes in zip(parts, starts, by_part, strict=False):
            self._absorb_host(part, start, outcomes)
        for link in result.links:
            task = UrlTask(
                url=link.url, depth=link.depth, priority=link.priority, request=link.request
            )
            self._route(task, count=link.count)

    def _absorb_host(self, part: HostSlice, start: int, outcomes: list[FetchOutcome]) -> None:
        """One host's outcomes; ``start`` is the index of its first request in the batch."""
        now = workflow.now().timestamp()
        host = part.lease.host
        retry = self._spec.retry
        hold_until = 0.0
        for outcome in outcomes:
            if outcome.retry_after_seconds is not None and holds_host(
                outcome.status, outcome.blocked
            ):
                hold_until = max(hold_until, now + outcome.retry_after_seconds)
        for outcome in outcomes:
            index = outcome.task - start
            source = part.tasks[index] if 0 <= index < len(part.tasks) else None
            if source is not None and outcome.error == DEFERRED:
                # Never sent: the batch stopped at a Retry-After. Same attempt, after the hold.
                self._retry_later(source, max(hold_until, now))
                continue
            if source is not None and will_retry(outcome, retry):
                self._stats.record_outcome(outcome, final=False)
                wait = backoff_seconds(outcome.attempt, retry, workflow.random().random())
                next_try = source.model_copy(update={"attempt": source.attempt + 1})
                self._retry_later(next_try, max(now + wait, hold_until))
                continue
            self._stats.record_outcome(outcome)
            if outcome.redirect_to and source is not None:
                self._follow_redirect(source, outcome.redirect_to, outcome.status)
        self._proxies.observe(host, outcomes, now=now, jitter=workflow.random().random())
        # A proxy that failed to carry a request tells nothing about the host.
        rest_until = self._pressure.observe(
            host,
            [o for o in outcomes if not is_proxy_failure(o)],
            now=now,
            jitter=workflow.random().random(),
        )
        if max(rest_until, hold_until) > now:
            self._politeness.rest(host, max(rest_until, hold_until))
        self._stats.record_pressure(host, self._pressure.host(host))

    def _requeue(self, tasks: list[UrlTask]) -> None:
        """URLs of a batch cut off (a cancel): back where they came from, no attempt counted,
        so the report counts them as left unfetched, not as lost."""
        now = workflow.now().timestamp()
        for task in tasks:
            if task.attempt > 1:
                self._retry_later(task, now)
            else:
                self._frontier.requeue(task)
                self._watch.touch(urls.origin(task.url))
                self._credits += 1
                self._watch.credits_arrived()

    def _retry_later(self, task: UrlTask, at: float) -> None:
        self._retries.push(task, at)
        self._watch.wake_at(urls.origin(task.url), at)

    def _follow_redirect(self, source: UrlTask, target: str, status: int | None) -> None:
        """The target, as Scrapy's redirect middleware would ask for it: the same request
        (callback, arguments, meta) at the new URL; a POST turned GET on a 302 or 303."""
        if source.redirects >= self._spec.max_redirects:
            self._stats.totals.redirects_exceeded += 1
            return
        request = source.request
        if request is not None and status in (302, 303) and request.method != "GET":
            request = request.model_copy(update={"method": "GET", "body_b64": ""})
        self._route(
            UrlTask(
                url=target,
                depth=source.depth,
                priority=source.priority,
                redirects=source.redirects + 1,
                request=request,
            )
        )

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
    ) -> T:
        """Run an activity, and run it again with the same input while the store is down.
        One that fetches (a batch, robots.txt) heartbeats, so a dead worker is noticed."""
        return await self._until_stored(
            lambda: workflow.execute_activity(
                name,
                request,
                result_type=result_type,
                start_to_close_timeout=timeout,
                heartbeat_timeout=HEARTBEAT_TIMEOUT if heartbeat else None,
                retry_policy=retry_policy,
            )
        )

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

    def _idle(self) -> bool:
        return (
            not self._reading_previous()
            and not self._batches
            and not self._retries
            and (self._frontier.queued() == 0 or self._credits == 0)
        )

    def _totals(self) -> ShardTotals:
        totals = self._stats.totals.model_copy()
        totals.in_flight_batches = len(self._batches)
        totals.queued = self._frontier.queued()
        totals.seen = self._frontier.seen_count()
        totals.seen_set_bytes = self._frontier.seen_memory_bytes()
        totals.history_length = workflow.info().get_current_history_length()
        totals.largest_payload_bytes = self._size.largest_payload
        totals.continued_as_new = self._generation
        totals.retry_waiting = len(self._retries)
        totals.parked_hosts = len(self._pressure.parked())
        totals.abandoned_hosts = len(self._pressure.abandoned())
        totals.store_down_since = self._store_down_since
        totals.store_down_cause = self._store_down_cause
        return totals

    async def _report(self) -> None:
        """Tell the parent what changed; awaited, so reports arrive in order."""
        idle = self._idle()
        queued = self._frontier.queued()
        returned = 0
        if idle and queued == 0 and self._credits > 0:
            returned, self._credits = self._credits, 0
        # Ask, only when running low, for at least a chunk and at most what is queued, so
        # that the request changes rarely and a long queue needs few grants.
        low = self._credits < self._spec.batch_size and queued > self._credits
        least = self._spec.batch_size * max(2, self._spec.concurrency_per_host)
        wants = max(least, queued - self._credits) if low else 0
        # Only what the parent decides on triggers a report: links to route, whether credits
        # are wanted (not how many: a queue that grows meanwhile sends no report), and
        # idleness (with the last message applied). Live counters are read by query instead.
        key = (idle, wants > 0, self._processed_seq if idle else None)
        if not self._forwards_due() and not returned and key == self._last_report:
            return
        self._last_report = key
        forwards, self._outbox = self._outbox, []
        # Forwards go in chunks, each a small payload; only the last may say the shard is idle.
        while True:
            chunk, forwards = forwards[:MAX_FORWARDS_PER_REPORT], forwards[MAX_FORWARDS_PER_REPORT:]
            report = ShardReport(
                shard=self._input.shard,
                processed_seq=self._processed_seq,
                idle=idle and not forwards,
                wants_credits=wants,
                returned_credits=returned,
                forwards=chunk,
                totals=self._totals(),
            )
            returned = 0
            self._size.note(report)
            await self._parent.signal("shard_report", report)
            if not forwards:
                return

    def _forwards_due(self) -> bool:
        """Links for other shards go in few, large reports: once enough wait, once the oldest
        waited FORWARD_WAIT, or at once when no batch of this shard is in flight (so a shard
        never sits on links while it has nothing else to do)."""
        if not self._outbox:
            return False
        waited = workflow.now().timestamp() - self._outbox_since
        return (
            len(self._outbox) >= FORWARD_BATCH
            or waited >= FORWARD_WAIT.total_seconds()
            or not self._batches
        )

    def _next_wake(self) -> timedelta | None:
        """When an origin's wait ends (a rest, a retry's backoff, a park: ``OriginWatch``) or
        a proxy's cool-down does; zero if one of those is due already (time passes while the
        shard reports). None while dispatch is off (paused, draining for continue-as-new,
        waiting on the store): then only a message, a landing batch or the store's return
        wakes the shard."""
        if self._paused or self._draining or self._store_down_since:
            return None
        now = workflow.now().timestamp()
        times = self._proxies.wake_times(now)
        if self._outbox:
            times.append(self._outbox_since + FORWARD_WAIT.total_seconds())
        watched = self._watch.next_time()
        if watched is not None:
            times.append(watched)
        if any(self._dispatched_at < t <= now for t in times) or (
            watched is not None and watched <= now
        ):
            return timedelta(0)  # came due after the last dispatch looked
        future = [t - now for t in times if t > now]
        return timedelta(seconds=min(future)) if future else None

    # -- continue-as-new with claim-checked state ------------------------------------------------

    async def _continue_as_new(self) -> None:
        """Store the state and continue as new; returns only if told to finish meanwhile."""
        generation = self._generation + 1
        self._apply_inbox()
        checkpoint = ShardCheckpoint(
            generation=generation,
            processed_seq=self._processed_seq,
            credits=self._credits,
            paused=self._paused,
            batch_seq=self._batch_seq,
            totals=self._stats.totals.model_copy(
                update={"largest_payload_bytes": self._size.largest_payload}
            ),
            seen_segments=await self._save_segments(
                "state", "seen", pack_fingerprints(self._frontier.seen_bytes()), generation
            ),
            frontier_segments=await self._save_segments(
                "state", "frontier", pack_records(self._frontier.export()), generation
            ),
            hosts_segments=await self._save_segments(
                "state", "hosts", self._host_records(), generation
            ),
            retry_segments=await self._save_segments(
                "state", "retries", pack_records(self._retries.export()), generation
            ),
            pressure_segments=await self._save_segments(
                "state", "pressure", pack_records(self._pressure.export()), generation
            ),
            proxy_segments=await self._save_segments(
                "state", "proxies", pack_records(self._proxies.export()), generation
            ),
            robots_segments=await self._save_segments(
                "state",
                "robots",
                pack_records([o, r.model_dump(mode="json")] for o, r in self._robots.items() if r),
                generation,
            ),
            resting=self._politeness.resting(workflow.now().timestamp()),
            previous_next=self._previous_next,
            series=self._stats.series,
        )
        if self._finish:
            return
        # Nothing awaits from here on: every message that arrived while saving is either
        # applied (none: applying happens in the loop) or carried over below.
        checkpoint.paused = self._paused
        checkpoint.pending = [
            self._inbox[seq] for seq in sorted(self._inbox) if seq > self._processed_seq
        ]
        next_input = self._input.model_copy(update={"checkpoint": checkpoint})
        self._size.note(next_input)
        workflow.continue_as_new(next_input)

    def _host_records(self) -> Iterable[bytes]:
        return pack_records(
            [name, stats.model_dump(mode="json")] for name, stats in self._stats.hosts.items()
        )

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
        self._credits = checkpoint.credits
        self._paused = checkpoint.paused
        self._batch_seq = checkpoint.batch_seq
        self._previous_next = checkpoint.previous_next
        self._stats.restore(checkpoint.totals, {}, series=checkpoint.series)
        self._exported = {
            "links": checkpoint.totals.links_discovered,
            "duplicates": checkpoint.totals.duplicates,
        }
        for host, until in checkpoint.resting.items():
            self._politeness.rest(host, until)
        for message in checkpoint.pending:
            self.enqueue(message)

    async def _restore_segments(self, checkpoint: ShardCheckpoint) -> None:
        """The large state, from the store; signals meanwhile only fill the inbox."""
        seen = [await self._load_segment(key) for key in checkpoint.seen_segments]
        self._frontier.restore_seen(b"".join(seen))
        del seen
        for key in checkpoint.frontier_segments:
            self._frontier.restore_queued(unpack_records(await self._load_segment(key)))
        hosts: dict[str, HostStats] = {}
        for key in checkpoint.hosts_segments:
            for name, stats in unpack_records(await self._load_segment(key)):
                hosts[name] = HostStats.model_validate(stats)
        self._stats.restore(self._stats.totals, hosts)
        for key in checkpoint.robots_segments:
            for origin, robots in unpack_records(await self._load_segment(key)):
                self._robots[origin] = RobotsResult.model_validate(robots)
        for key in checkpoint.retry_segments:
            self._retries.restore(unpack_records(await self._load_segment(key)))
        for key in checkpoint.pressure_segments:
            self._pressure.restore(unpack_records(await self._load_segment(key)))
        for key in checkpoint.proxy_segments:
            self._proxies.restore(unpack_records(await self._load_segment(key)))
        # A new run looks at every origin with work once; from then on at what changes.
        for origin in self._frontier.origins() + self._retries.origins():
            self._watch.touch(origin)
        # Loaded into history now, so the store's copy is no longer needed.
        delete = SegmentDelete(
            output=self._spec.output,
            prefix=layout.shard_state_prefix(
                self._input.crawl_id, self._input.shard, checkpoint.generation
            ),
        )
        await self._store_activity("delete_segments", delete)
