"""A shard's dispatch pass: which origins go now, cut into batches, robots.txt and sitemap
fetches, and what each origin that does not go waits for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shardcrawl.core import urls
from shardcrawl.models import (
    HOST_ABANDONED,
    CrawlSpec,
    FetchOutcome,
    ProxyLease,
    RobotsTarget,
    SitemapTarget,
)
from shardcrawl.models.records import failure_record
from shardcrawl.policy.activity_slots import MAX_BATCHES_IN_FLIGHT, MAX_RETRY_BATCHES, ActivitySlots
from shardcrawl.policy.batch_cutter import BatchCutter, HostSlice
from shardcrawl.policy.fetch_queues import FetchQueues
from shardcrawl.policy.frontier import Frontier
from shardcrawl.policy.host_pressure import HostPressure
from shardcrawl.policy.host_slicer import MAX_BATCH_URL_BYTES, HostSlicer
from shardcrawl.policy.host_table import HostTable
from shardcrawl.policy.origin_watch import OriginWatch
from shardcrawl.policy.page_credits import PageCredits
from shardcrawl.policy.politeness import Politeness
from shardcrawl.policy.proxy_router import BATCH, DIRECT, ROBOTS, SITEMAP, ProxyRouter
from shardcrawl.policy.retry_queue import RetryQueue
from shardcrawl.policy.shard_stats import ShardStats
from shardcrawl.policy.sitemap_queue import Entry, SitemapQueue

__all__ = ["DispatchPlan", "DispatchPlanner"]

# Origins whose robots.txt one fetch_robots activity fetches (side by side, in one crawler).
ROBOTS_PER_ACTIVITY = 100
# Sitemaps one fetch_sitemaps activity reads (side by side, one per host).
SITEMAPS_PER_ACTIVITY = 20
# A batch of new work cut to less than HOLD_FILL of batch_size is held open, to fill with the
# next passes' slices, while the shard has HOLD_IN_FLIGHT activities in flight (the workers
# have work to run meanwhile), for at most HOLD_SECONDS. A broad crawl's batches so carry more
# requests each, and each batch costs the Temporal server the same (docs/benchmarks.md,
# "Holding small batches open"). A few large hosts fill their batches alone, and are cut as
# before.
HOLD_FILL = 0.75
HOLD_IN_FLIGHT = 4
HOLD_SECONDS = 2.0


@dataclass
class DispatchPlan:
    """What one dispatch pass decided to run: batches (each a list of host slices) and
    robots.txt fetches (each a list of origins)."""

    batches: list[list[HostSlice]] = field(default_factory=list)
    robots: list[list[RobotsTarget]] = field(default_factory=list)
    sitemaps: list[list[SitemapTarget]] = field(default_factory=list)


class DispatchPlanner:
    """Exists so the dispatch pass, the engine's largest decision, reads on its own."""

    def __init__(
        self,
        spec: CrawlSpec,
        *,
        clock: Callable[[], float],
        watch: OriginWatch,
        hosts: HostTable,
        fleets: FetchQueues,
        slots: ActivitySlots,
        slicer: HostSlicer,
        credits: PageCredits,
        frontier: Frontier,
        retries: RetryQueue,
        stats: ShardStats,
        politeness: Politeness,
        pressure: HostPressure,
        proxies: ProxyRouter,
        sitemaps: SitemapQueue,
        end: Callable[[str, dict[str, Any]], None],
    ) -> None:
        """``end``: where a URL that ended in the pass (its host given up on) goes."""
        self._spec = spec
        self._clock = clock
        self._watch = watch
        self._hosts = hosts
        self._fleets = fleets
        self._slots = slots
        self._slicer = slicer
        self._credits = credits
        self._frontier = frontier
        self._retries = retries
        self._stats = stats
        self._politeness = politeness
        self._pressure = pressure
        self._proxies = proxies
        self._sitemaps = sitemaps
        self._end = end
        # When the last pass looked.
        self.dispatched_at = 0.0
        # Per fleet, the batches being cut: new work, retries. A small batch of new work may
        # stay open from one pass to the next (HOLD_FILL); retries are closed every pass.
        self._cutters: dict[str | None, tuple[BatchCutter, BatchCutter]] = {}

    def plan(self) -> DispatchPlan:
        """Cut batches from the hosts that may be ready (``OriginWatch``: what changed, not
        every host): each host's requests are a slice with its own allotment, and slices share
        batches (``BatchCutter``), new work and retries apart; a small batch of new work may
        be held open for the next pass (HOLD_FILL)."""
        now = self._clock()
        self.dispatched_at = now
        plan = DispatchPlan()
        limits = {"max_requests": self._spec.batch_size, "max_url_bytes": MAX_BATCH_URL_BYTES}
        # A batch or robots.txt fetch runs on one fleet's queue: each fleet is cut apart.
        cutters = self._cutters
        robots_of: dict[str | None, list[RobotsTarget]] = {}
        robots_hosts: set[str] = set()  # one origin of a host per fetch_robots
        due = self._watch.take(now)
        due.sort(key=self._crawl_order)
        capped = False  # at the shard's limit: a batch held open could not fill
        for i, origin in enumerate(due):
            cutting = sum(bool(c) for pair in cutters.values() for c in pair)
            if self._slots.in_flight + cutting >= MAX_BATCHES_IN_FLIGHT:
                for rest in due[i:]:
                    self._watch.touch(rest)
                capped = True
                break
            record = self._hosts.of(origin)
            host = record.name
            fleet = self._fleets.of_host(host)
            if fleet is not None:
                opened = sum(bool(c) for c in cutters.get(fleet, ())) + (fleet in robots_of)
                if self._slots.fleet_full(fleet, opened):
                    self._slots.wait_for_fleet(fleet, origin)
                    continue  # the fleet's next landing touches it
            # robots.txt is fetched as soon as an origin has work, credits or not, so that
            # the first batch need not wait for it when credits arrive. It goes the way the
            # host's pages go (a proxy slot, if the host's route has proxies).
            if self._spec.obey_robots_txt and origin not in record.robots:
                if host in robots_hosts:
                    self._watch.touch(origin)  # one origin of a host per fetch_robots
                    continue
                proxies = self._proxy_slots(ROBOTS, origin, host, 1)
                if proxies is None:
                    continue  # the grant's arrival touches it
                record.robots[origin] = None
                robots = robots_of.setdefault(fleet, [])
                robots.append(RobotsTarget(origin=origin, proxies=proxies))
                robots_hosts.add(host)
                if len(robots) >= ROBOTS_PER_ACTIVITY:
                    self._plan_robots(plan, robots_of.pop(fleet))
                continue
            if self._spec.obey_robots_txt and record.robots[origin] is None:
                continue  # its robots.txt is on the way, and touches it when it comes
            if record.sitemaps_unread:
                record.sitemap_waiters[origin] = None
                continue  # its sitemaps may carry pages over: they are read first
            state = self._pressure.state(host, now)
            if state == "abandoned":
                self._give_up(origin)
                continue
            if state == "parked":
                self._watch.wake_at(origin, self._pressure.host(host).parked_until)
                continue
            if fleet not in cutters:
                cutters[fleet] = (BatchCutter(**limits), BatchCutter(**limits))
            fresh_cut, retry_cut = cutters[fleet]
            if state == "probing":
                started = self._cut(plan, fresh_cut, self._slicer.probe(origin, host, now), now)
            else:
                part = self._slicer.fresh_slice(origin, host, now)
                started = self._cut(plan, fresh_cut, part, now)
                started = started or self._cut(
                    plan, retry_cut, self._slicer.retry_slice(origin, host, now), now
                )
            if not started:
                self._wait(origin, host, now)
        for fresh_cut, retry_cut in cutters.values():
            if capped or not self._holds(fresh_cut, now):
                self._cut(plan, fresh_cut, None, now, close=True)
            self._cut(plan, retry_cut, None, now, close=True)
        for robots in robots_of.values():
            self._plan_robots(plan, robots)
        self._plan_sitemaps(plan, now)
        self._proxies.return_unused()
        return plan

    def _holds(self, cutter: BatchCutter, now: float) -> bool:
        """Whether the open batch stays open for the next pass (HOLD_FILL)."""
        return (
            bool(cutter)
            and cutter.requests < HOLD_FILL * cutter.max_requests
            and now < cutter.opened_at + HOLD_SECONDS
            and self._slots.in_flight >= HOLD_IN_FLIGHT
        )

    def held_until(self) -> float | None:
        """When the oldest batch held open is to go, whatever it holds by then; None if none
        is held."""
        opened = [fresh.opened_at for fresh, _ in self._cutters.values() if fresh]
        return min(opened) + HOLD_SECONDS if opened else None

    def release_held(self) -> DispatchPlan:
        """The batches held open, closed now: before continue-as-new, whose state carries no
        open batch, and when the shard finishes."""
        plan = DispatchPlan()
        now = self._clock()
        for fresh_cut, _ in self._cutters.values():
            self._cut(plan, fresh_cut, None, now, close=True)
        return plan

    def _proxy_slots(
        self, kind: str, origin: str, host: str, slots: int
    ) -> list[ProxyLease] | None:
        """A robots.txt or sitemap fetch's proxy slot: ``DIRECT`` without a route, else the
        granted lease, or None while the origin waits for it."""
        if self._proxies.route(host) is None:
            return DIRECT
        grant = self._proxies.take(kind, host, slots)
        if grant is None:
            if origin:  # (a sitemap waits in its queue, which every pass looks at)
                self._hosts[host].grant_waiters[origin] = None
            return None
        return grant.leases

    def _plan_sitemaps(self, plan: DispatchPlan, now: float) -> None:
        """Sitemaps whose wait is over, in activities of SITEMAPS_PER_ACTIVITY, one per host
        each (a host's others wait for the next pass)."""
        later: list[Entry] = []
        targets_of: dict[str | None, list[SitemapTarget]] = {}  # one fleet per activity
        hosts: set[str] = set()
        while self._sitemaps.due(now):
            if self._slots.in_flight >= MAX_BATCHES_IN_FLIGHT:
                break
            entry = self._sitemaps.pop()
            target = entry[2]
            host = urls.hostname(target.url)
            fleet = self._fleets.of_host(host)
            full = fleet is not None and self._slots.fleet_full(fleet)
            proxies = None
            if not full and host not in hosts:
                proxies = self._proxy_slots(SITEMAP, "", host, 1)
            if proxies is None:
                later.append(entry)
                continue
            hosts.add(host)
            targets = targets_of.setdefault(fleet, [])
            targets.append(target.model_copy(update={"proxies": proxies}))
            if len(targets) >= SITEMAPS_PER_ACTIVITY:
                self._slots.started(fleet)
                plan.sitemaps.append(targets_of.pop(fleet))
                hosts -= {urls.hostname(t.url) for t in targets}
        for fleet, targets in targets_of.items():
            self._slots.started(fleet)
            plan.sitemaps.append(targets)
        self._sitemaps.put_back(later)

    def _plan_robots(self, plan: DispatchPlan, targets: list[RobotsTarget]) -> None:
        self._slots.started(self._fleets.of_url(targets[0].origin))
        plan.robots.append(targets)

    def _crawl_order(self, origin: str) -> tuple[int, int, int, int, str]:
        """Origins with new work first, shallowest next request first; then retries only."""
        key = self._frontier.order_key(origin)
        return (0, *key, "") if key is not None else (1, 0, 0, 0, origin)

    def _wait(self, origin: str, host: str, now: float) -> None:
        """An origin the pass looked at and did not dispatch: what it waits for."""
        fresh = self._frontier.queued_at(origin) > 0
        retry_at = self._retries.ready_at(origin)
        if not fresh and retry_at is None:
            return  # no work: new work touches it
        if self._politeness.in_use(host):
            # The host's batch is in flight (perhaps for its other origin): its landing
            # touches this origin.
            self._hosts[host].busy_waiters[origin] = None
            return
        rest = self._politeness.ready_at(host)
        if rest > now:
            self._watch.wake_at(origin, rest)
            return
        if self._proxies.waits(BATCH, host):
            self._hosts[host].grant_waiters[origin] = None
            return
        if retry_at is not None:
            if retry_at > now:
                self._watch.wake_at(origin, retry_at)
            elif self._slots.retry_batches >= MAX_RETRY_BATCHES:
                self._watch.touch(origin)  # a retry batch that lands frees the budget
        if fresh and self._credits.count <= 0:
            self._watch.wait_for_credits(origin)

    def _cut(
        self,
        plan: DispatchPlan,
        cutter: BatchCutter,
        part: HostSlice | None,
        now: float,
        *,
        close: bool = False,
    ) -> bool:
        """Adds a host's slice to the batch being cut, and plans each batch that is done;
        whether there was a slice."""
        for batch in (cutter.add(part, now) if part else None, cutter.close() if close else None):
            if batch:
                self._slots.started(self._fleets.of_url(batch[0].origin))
                self._slots.retry_batches += batch[0].allotment.retry
                plan.batches.append(batch)
        return part is not None

    def _give_up(self, origin: str) -> None:
        """A host given up on (parked too often): its waiting URLs end as failures."""
        # A waiting retry's last attempt is the one before the attempt it waited for.
        ended = [(t, t.attempt - 1) for t in self._retries.take_all(origin)]
        ended += [(t, 0) for t in self._frontier.pop(origin, self._frontier.queued_at(origin))]
        for task, requests in ended:
            self._stats.record_outcome(
                FetchOutcome(url=task.url, error=HOST_ABANDONED, attempt=max(1, requests))
            )
            self._end(origin, failure_record(task, HOST_ABANDONED, attempts=requests))
