"""The shard's decisions, as a plain class: what to fetch next, how hard, and what a result
means. ``DomainShardWorkflow`` is a thin shell over it that receives messages, runs the
activities the engine plans, hands it their results and waits for the time it names.

Everything here is deterministic given its inputs: the clock and the random source are
injected (the workflow's, or a test's), and nothing does I/O, so the engine is tested without
a Temporal server (tests/test_shard_engine.py).

What the engine owns, per shard: the frontier and seen-set, the retry queue, which origins a
dispatch pass looks at (``OriginWatch``), each host's politeness budget, pressure and proxy
slots, robots.txt results, the links waiting for other shards, page credits and counters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from shardcrawl.core import urls
from shardcrawl.models import (
    BatchResult,
    BatchSlice,
    CrawlSpec,
    HostStats,
    RobotsResult,
    RobotsTarget,
    ShardTotals,
    SitemapResult,
    SitemapTarget,
    UrlTask,
)
from shardcrawl.models.proxy_messages import ProxyGrants
from shardcrawl.policy.activity_slots import MAX_BATCHES_IN_FLIGHT as MAX_BATCHES_IN_FLIGHT
from shardcrawl.policy.activity_slots import MAX_RETRY_BATCHES as MAX_RETRY_BATCHES
from shardcrawl.policy.activity_slots import ActivitySlots
from shardcrawl.policy.batch_absorber import BatchAbsorber
from shardcrawl.policy.batch_cutter import HostSlice
from shardcrawl.policy.dispatch_planner import DispatchPlan, DispatchPlanner
from shardcrawl.policy.fetch_queues import FetchQueues
from shardcrawl.policy.frontier import Frontier
from shardcrawl.policy.host_pressure import HostPressure
from shardcrawl.policy.host_slicer import PARTIAL_ROTATION_REQUESTS as PARTIAL_ROTATION_REQUESTS
from shardcrawl.policy.host_slicer import HostSlicer
from shardcrawl.policy.host_table import HostTable
from shardcrawl.policy.origin_watch import OriginWatch
from shardcrawl.policy.page_credits import CreditAsk, PageCredits
from shardcrawl.policy.politeness import Politeness
from shardcrawl.policy.proxy_router import ProxyRouter
from shardcrawl.policy.retry_queue import RetryQueue
from shardcrawl.policy.robots_absorber import RobotsAbsorber
from shardcrawl.policy.shard_gauges import ShardGauges
from shardcrawl.policy.shard_outbox import ShardOutbox
from shardcrawl.policy.shard_stats import ShardStats
from shardcrawl.policy.sitemap_queue import SitemapQueue
from shardcrawl.policy.state_records import STATE_KINDS as STATE_KINDS
from shardcrawl.policy.state_records import StateRecords
from shardcrawl.policy.url_intake import UrlIntake

__all__ = ["CreditAsk", "DispatchPlan", "ShardEngine"]


class ShardEngine:
    def __init__(
        self,
        spec: CrawlSpec,
        *,
        shard: int,
        shard_count: int,
        clock: Callable[[], float],
        random: Callable[[], float],
        incremental: bool = False,
        generation: int = 0,
    ) -> None:
        """``incremental``: the crawl asks again for a previous crawl's pages; then a host's
        pages wait for its sitemaps, whose lastmod may spare them a request. ``generation``:
        the shard's run, which its proxy asks and leases belong to."""
        self.spec = spec
        self.shard = shard
        self.shard_count = shard_count
        self._clock = clock
        self._domains = urls.DomainSet(spec.effective_allowed_domains())
        self.frontier = Frontier(spec.order)
        self.retries = RetryQueue()
        # One record per host: its budget, pressure, counters, robots.txt and waiters.
        self.hosts = HostTable()
        self.stats = ShardStats(self.hosts)
        self.politeness = Politeness(
            max_concurrency=spec.concurrency_per_host,
            delay_seconds=spec.delay_seconds,
            hosts=self.hosts,
        )
        self.pressure = HostPressure(
            max_concurrency=spec.concurrency_per_host,
            delay_seconds=spec.delay_seconds,
            blocks=spec.blocks,
            retry=spec.retry,
            hosts=self.hosts,
        )
        self.proxies = ProxyRouter(spec.proxies, shard=shard, generation=generation)
        self.fleets = FetchQueues(spec.proxies)
        self._watch = OriginWatch()
        self._slots = ActivitySlots(self.fleets, self._watch)
        self._credits = PageCredits(spec, self._watch)
        self._outbox = ShardOutbox(clock)
        self._sitemaps = SitemapQueue(
            domains=self._domains,
            stats=self.stats,
            hosts=self.hosts,
            frontier=self.frontier,
            watch=self._watch,
            proxies=self.proxies,
            retry=spec.retry,
            random=random,
            incremental=incremental and spec.sitemaps != "off",
            route=functools.partial(self.route, is_link=False),
        )
        self._robots = RobotsAbsorber(
            spec, hosts=self.hosts, watch=self._watch, proxies=self.proxies, sitemaps=self._sitemaps
        )
        self._slicer = HostSlicer(
            spec,
            frontier=self.frontier,
            retries=self.retries,
            hosts=self.hosts,
            stats=self.stats,
            politeness=self.politeness,
            pressure=self.pressure,
            proxies=self.proxies,
            slots=self._slots,
            credits=self._credits,
        )
        self._planner = DispatchPlanner(
            spec,
            clock=clock,
            watch=self._watch,
            hosts=self.hosts,
            fleets=self.fleets,
            slots=self._slots,
            slicer=self._slicer,
            credits=self._credits,
            frontier=self.frontier,
            retries=self.retries,
            stats=self.stats,
            politeness=self.politeness,
            pressure=self.pressure,
            proxies=self.proxies,
            sitemaps=self._sitemaps,
            end=self._end,
        )
        self._absorber = BatchAbsorber(
            spec,
            clock=clock,
            random=random,
            watch=self._watch,
            slots=self._slots,
            hosts=self.hosts,
            frontier=self.frontier,
            retries=self.retries,
            stats=self.stats,
            politeness=self.politeness,
            pressure=self.pressure,
            proxies=self.proxies,
            route=self.route,
            end=self._end,
        )
        self._intake = UrlIntake(
            spec,
            shard=shard,
            shard_count=shard_count,
            domains=self._domains,
            stats=self.stats,
            hosts=self.hosts,
            frontier=self.frontier,
            watch=self._watch,
            outbox=self._outbox,
            sitemaps=self._sitemaps,
            slicer=self._slicer,
        )
        self._state_records = StateRecords(
            frontier=self.frontier,
            hosts=self.hosts,
            stats=self.stats,
            retries=self.retries,
            pressure=self.pressure,
            sitemaps=self._sitemaps,
        )
        self._gauges = ShardGauges(
            stats=self.stats,
            frontier=self.frontier,
            retries=self.retries,
            pressure=self.pressure,
            slots=self._slots,
        )
        # Records of URLs that ended in the shard, by origin, not yet written.
        self._records: dict[str, list[dict[str, Any]]] = {}

    @property
    def credits(self) -> int:
        """Page credits: new requests the shard may still send."""
        return self._credits.count

    @credits.setter
    def credits(self, credits: int) -> None:
        self._credits.count = credits

    @property
    def in_flight(self) -> int:
        """Activities planned and not yet landed or cut off (batches, robots.txt, sitemaps)."""
        return self._slots.in_flight

    # -- incoming URLs -------------------------------------------------------------------------

    def add_credits(self, credits: int) -> None:
        self._credits.add(credits)

    def route(self, task: UrlTask, count: int = 1, *, is_link: bool = True) -> None:
        """A URL found or named: to its owner, if in scope (``UrlIntake.route``)."""
        self._intake.route(task, count, is_link=is_link)

    def add_seed(self, task: UrlTask) -> None:
        """A seed: a sitemap, a host or a page (``UrlIntake.add_seed``)."""
        self._intake.add_seed(task)

    def accept(self, task: UrlTask, *, is_link: bool) -> None:
        """A URL this shard owns (``UrlIntake.accept``)."""
        self._intake.accept(task, is_link=is_link)

    # -- dispatch --------------------------------------------------------------------------------

    def release_held(self) -> DispatchPlan:
        """The batches held open to fill, to run now (``DispatchPlanner.release_held``)."""
        return self._planner.release_held()

    def plan(self) -> DispatchPlan:
        """What to run now (``DispatchPlanner``)."""
        return self._planner.plan()

    def proxy_grants(self, message: ProxyGrants) -> None:
        """The broker's grants: the origins that waited for them are due."""
        for name in self.proxies.receive(message):
            host = self.hosts[name]
            self._watch.touch_all(host.grant_waiters)
            host.grant_waiters.clear()

    def fetch_queue(self, url: str) -> str | None:
        """The fleet that runs a planned activity whose first URL (or origin) is ``url``:
        a batch, robots.txt or sitemaps activity never mixes fleets. None: the main queue."""
        return self.fleets.of_url(url)

    def fleet_load(self) -> dict[str, int]:
        """Activities in flight on each fleet the routes name, for live status."""
        return self._slots.fleet_load()

    def _end(self, origin: str, record: dict[str, Any]) -> None:
        """A URL that ended here, not in a batch: its record waits for the shell to write."""
        self._records.setdefault(origin, []).append(record)

    def has_records(self) -> bool:
        return bool(self._records)

    def take_records(self) -> dict[str, list[dict[str, Any]]]:
        """Records of URLs that ended in the shard (given up with their host, cut off by a
        cancel), by origin, for the shell to write into the crawl's items."""
        records, self._records = self._records, {}
        return records

    def batch_slice(self, part: HostSlice) -> BatchSlice:
        """A slice as the batch activity gets it (``HostSlicer.batch_slice``)."""
        return self._slicer.batch_slice(part)

    # -- results ---------------------------------------------------------------------------------

    def landed(self, parts: list[HostSlice], result: BatchResult) -> None:
        """A batch's result (``BatchAbsorber``)."""
        self._absorber.landed(parts, result)

    def cut_off(self, parts: list[HostSlice]) -> None:
        """A batch a cancel cut off (``BatchAbsorber``)."""
        self._absorber.cut_off(parts)

    def robots_landed(
        self, targets: list[RobotsTarget], results: list[RobotsResult] | None
    ) -> None:
        """A fetch_robots activity's results (None: it failed, so every origin's robots.txt
        counts as not fetched)."""
        self._slots.landed(targets[0].origin)
        self._robots.landed(targets, results)

    def sitemap_entries(self, target: SitemapTarget, records: list[list[Any]]) -> None:
        """A page of a sitemap's entries (``SitemapQueue.entries``)."""
        self._sitemaps.entries(target, records)

    def sitemaps_landed(self, targets: list[SitemapTarget], results: list[SitemapResult]) -> None:
        """A fetch_sitemaps activity's results, once their entries are in: what was fetched,
        what went wrong (by class), and a failure that may pass retried as a page's would be."""
        self._slots.landed(targets[0].url)
        self._sitemaps.landed(targets, results, self._clock())

    # -- what the shard tells its parent ---------------------------------------------------------

    def idle(self) -> bool:
        """Nothing in flight, no retry waiting, and no new work it may start."""
        return (
            not self.in_flight
            and self._planner.held_until() is None
            and not self.retries
            and not self._sitemaps
            and (self.frontier.queued() == 0 or self.credits == 0)
        )

    def ask_credits(self, *, idle: bool) -> CreditAsk:
        """What to ask of the parent, and give back (``PageCredits.ask``)."""
        return self._credits.ask(idle=idle, queued=self.frontier.queued())

    def forwards_due(self) -> bool:
        """Links for other shards go in few, large reports: once enough wait, once the oldest
        waited FORWARD_WAIT_SECONDS, or at once when nothing of this shard is in flight (so a
        shard never sits on links while it has nothing else to do)."""
        return self._outbox.due(in_flight=self.in_flight)

    def has_forwards(self) -> bool:
        return bool(self._outbox)

    def take_forwards(self) -> dict[int, list[UrlTask]]:
        """The links waiting for other shards, by owning shard."""
        return self._outbox.take()

    def next_wake(self) -> float | None:
        """Seconds until an origin's wait ends (a rest, a retry's backoff, a park:
        ``OriginWatch``), a sitemap's retry, waiting links or a batch held open are due; zero
        if one of those came due after the last dispatch looked; None if nothing waits for a
        time. (A proxy's cool-down is the broker's: its grant wakes the shard.)"""
        now = self._clock()
        times: list[float] = []
        forwards = self._outbox.deadline()
        if forwards is not None:
            times.append(forwards)
        watched = self._watch.next_time()
        if watched is not None:
            times.append(watched)
        sitemap = self._sitemaps.next_time()
        if sitemap is not None:
            times.append(sitemap)
        held = self._planner.held_until()
        if held is not None:
            times.append(held)
        if any(self._planner.dispatched_at < t <= now for t in times) or (
            watched is not None and watched <= now
        ):
            return 0.0
        future = [t - now for t in times if t > now]
        return min(future) if future else None

    def totals(self) -> ShardTotals:
        """The counters, with the engine's levels (the shell adds its own)."""
        return self._gauges.totals()

    def busiest_hosts(self, limit: int) -> dict[str, HostStats]:
        """The ``limit`` busiest hosts, and every parked or abandoned one."""
        return self._gauges.busiest_hosts(limit)

    # -- continue-as-new -------------------------------------------------------------------------

    def export(self, kind: str) -> Iterable[Any]:
        """One kind of state (``STATE_KINDS``) as records, for a checkpoint's segments. A batch
        held open is not state: ``release_held`` first."""
        assert self._planner.held_until() is None, "a batch is held open: release_held() first"
        return self._state_records.export(kind)

    def restore(self, kind: str, records: Iterable[Any]) -> None:
        """Records of one kind of state, from a checkpoint's segments."""
        self._state_records.restore(kind, records)

    def resting(self) -> dict[str, float]:
        return self.politeness.resting(self._clock())

    def restore_resting(self, resting: dict[str, float]) -> None:
        for host, until in resting.items():
            self.politeness.rest(host, until)

    def look_at_everything(self) -> None:
        """A new run looks at every origin with work once; from then on at what changes."""
        for origin in self.frontier.origins() + self.retries.origins():
            self._watch.touch(origin)

    def levels(self) -> Iterator[tuple[str, int]]:
        """Gauges for the workers' metrics endpoint."""
        return self._gauges.levels()
