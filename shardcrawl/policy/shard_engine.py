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

import bisect
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shardcrawl.core import urls
from shardcrawl.models import (
    DEFERRED,
    HOST_ABANDONED,
    ROBOTS_FETCH_FAILED,
    SITEMAP_META,
    BatchResult,
    BatchSlice,
    CrawlSpec,
    FetchOutcome,
    HostStats,
    ProxyLease,
    RequestData,
    RobotsResult,
    RobotsTarget,
    ShardTotals,
    SitemapResult,
    SitemapTarget,
    UrlTask,
)
from shardcrawl.models.proxy_messages import ProxyGrants
from shardcrawl.models.records import CANCELLED, failure_record
from shardcrawl.policy.batch_cutter import BatchCutter, HostSlice
from shardcrawl.policy.blocks import holds_host
from shardcrawl.policy.fetch_queues import FetchQueues
from shardcrawl.policy.frontier import Frontier, RecentSet
from shardcrawl.policy.host_pressure import HostPressure
from shardcrawl.policy.host_table import HostTable
from shardcrawl.policy.origin_watch import OriginWatch
from shardcrawl.policy.politeness import Lease, Politeness
from shardcrawl.policy.proxy_health import PROXY_FAILURES, is_proxy_failure
from shardcrawl.policy.proxy_router import BATCH, DIRECT, ROBOTS, SITEMAP, ProxyRouter
from shardcrawl.policy.retry_policy import RETRYABLE_ERRORS, backoff_seconds, will_retry
from shardcrawl.policy.retry_queue import RetryQueue
from shardcrawl.policy.segments import INLINE_PAYLOAD_BYTES
from shardcrawl.policy.shard_stats import ShardStats
from shardcrawl.policy.url_rules import UrlRules

__all__ = ["CreditAsk", "DispatchPlan", "ShardEngine"]

# Proxies a robots.txt fetch may fail through before the failure stands for the host.
ROBOTS_PROXY_TRIES = 3
# Origins whose robots.txt one fetch_robots activity fetches (side by side, in one crawler).
ROBOTS_PER_ACTIVITY = 100
MAX_BATCHES_IN_FLIGHT = 64
# Foreign URLs this shard remembers having forwarded, so a link seen on many pages crosses to
# its owner once, not once per page. Only an optimisation: the owner still dedups everything.
FORWARDED_MEMORY = 200_000
# Links for other shards wait for this many, or this long, while batches are in flight: each
# message is three history events and a workflow task on both sides (some 20 ms of the
# Temporal server's CPU, docs/benchmarks.md), so few large ones pay. Not longer: a link
# that waits lets the owner reach the page first by a longer path, at a greater depth, and
# under max_depth a page's depth decides what of it is crawled (10 s lost pages within
# max_depth 6 in tests/test_node_loss.py).
FORWARD_BATCH = 500
FORWARD_WAIT_SECONDS = 2.0
# Retry batches of all hosts together hold at most this share of the shard's batch slots, so
# failing hosts cannot crowd out new work on healthy ones (each host's own retry budget is
# the spec's retry.budget_share of its concurrency).
MAX_RETRY_BATCHES = max(1, MAX_BATCHES_IN_FLIGHT // 5)
MAX_BATCH_URL_BYTES = INLINE_PAYLOAD_BYTES // 2
# A rotating host whose lease covers only part of its pool's healthy proxies gets at most this
# many requests per proxy of the lease in its batch, so the next lease rotates on soon enough
# that any 100 consecutive requests of the host spread evenly over the pool, within 20%.
PARTIAL_ROTATION_REQUESTS = 10
# Sitemaps one fetch_sitemaps activity reads (side by side, one per host), and how deep
# sitemap indexes may nest.
SITEMAPS_PER_ACTIVITY = 20
MAX_SITEMAP_NESTING = 4
# The kinds of state a checkpoint stores, each as segments of records (``export``).
STATE_KINDS = ("frontier", "hosts", "retries", "pressure", "robots", "sitemaps")


@dataclass
class DispatchPlan:
    """What one dispatch pass decided to run: batches (each a list of host slices) and
    robots.txt fetches (each a list of origins)."""

    batches: list[list[HostSlice]] = field(default_factory=list)
    robots: list[list[RobotsTarget]] = field(default_factory=list)
    sitemaps: list[list[SitemapTarget]] = field(default_factory=list)


@dataclass(frozen=True)
class CreditAsk:
    """What the shard tells its parent about credits: how many it wants (0: none), how many
    it gives back, and whether it is idle."""

    idle: bool
    wants: int
    returned: int


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
        self._random = random
        self._domains = urls.DomainSet(spec.effective_allowed_domains())
        self._rules = UrlRules(spec.include, spec.exclude)
        self._quota = spec.max_pages_per_host
        self.credits = 0
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
        # Each fleet a route names holds at most its share of the shard's batch slots, the
        # main queue's fleet keeping one share: a fleet with no worker cannot stall the rest.
        self._fleet_cap = MAX_BATCHES_IN_FLIGHT // (1 + len(self.fleets.named))
        # Per named fleet: its activities in flight, and the origins waiting for a slot.
        self._fleet_load = dict.fromkeys(self.fleets.named, 0)
        self._fleet_waiters: dict[str, dict[str, None]] = {}
        self._watch = OriginWatch()
        self._forwarded = RecentSet(capacity=FORWARDED_MEMORY)
        # Links for other shards, by owner, and since when the oldest waits.
        self._outbox: dict[int, list[UrlTask]] = {}
        self._outbox_size = 0
        self._outbox_since = 0.0
        # Sitemaps to read: (not before, arrival, target); and every one ever queued, so that
        # an index that names itself, or one named twice, is read once.
        self._sitemaps: list[tuple[float, int, SitemapTarget]] = []
        self._sitemaps_seen: set[str] = set()
        self._sitemap_seq = 0
        # Records of URLs that ended in the shard, by origin, not yet written.
        self._records: dict[str, list[dict[str, Any]]] = {}
        # Incremental crawls: a host's pages wait until its sitemaps are read.
        self._incremental = incremental and spec.sitemaps != "off"
        # Activities planned and not yet landed or cut off (batches, robots.txt, sitemaps).
        self.in_flight = 0
        self._retry_batches = 0
        self._dispatched_at = 0.0

    # -- incoming URLs -------------------------------------------------------------------------

    def add_credits(self, credits: int) -> None:
        self.credits += credits
        if credits > 0:
            self._watch.credits_arrived()

    def route(self, task: UrlTask, count: int = 1, *, is_link: bool = True) -> None:
        """Scope and depth checks, then to the owner: this shard, or another one (sent to it
        with the next links for other shards).
        ``count`` is how often a batch linked the URL; all but the first are duplicates."""
        if not urls.in_allowed_domains(task.url, self._domains):
            self.stats.totals.out_of_scope += count
            return
        rule = self._rules.rejects(task.url) if self._rules else None
        if rule is not None:
            filtered = self.stats.totals.filtered_by_rule
            filtered[rule] = filtered.get(rule, 0) + count
            return
        if task.depth > self.spec.max_depth:
            self.stats.totals.too_deep += count
            return
        for _ in range(count - 1):
            self.stats.record_link(task.url, duplicate=True)
        owner = urls.shard_of(urls.origin(task.url), self.shard_count)
        if owner == self.shard:
            self.accept(task, is_link=is_link)
        elif self._forwarded.add(task):
            if not self._outbox:
                self._outbox_since = self._clock()
            self._outbox.setdefault(owner, []).append(task)
            self._outbox_size += 1
        else:
            self.stats.record_link(task.url, duplicate=True)

    def add_seed(self, task: UrlTask) -> None:
        """A seed: a sitemap to read (unless sitemaps are off), else a page to fetch (unless
        the crawl reads sitemaps only: then the seed only names a host whose robots.txt may
        name sitemaps)."""
        if self.spec.sitemaps != "off" and urls.looks_like_sitemap(task.url):
            self._queue_sitemap(task.url, nesting=0)
        elif self.spec.sitemaps == "only":
            self._watch.touch(urls.origin(task.url))
        else:
            self.accept(task, is_link=False)

    def accept(self, task: UrlTask, *, is_link: bool) -> None:
        """A URL this shard owns: into the frontier unless seen (a link is counted), or,
        if its host has reached its quota, counted and remembered as seen."""
        origin = urls.origin(task.url)
        if self._quota is not None and self._quota_left(self.hosts.of(origin).name) <= 0:
            added = self.frontier.mark_seen(task)
            self.stats.totals.over_quota += added
        else:
            added = self.frontier.offer(task)
            if added:
                self._watch.touch(origin)
        if is_link:
            self.stats.record_link(task.url, duplicate=not added)

    def _quota_left(self, host: str) -> int:
        """URLs the host may still be sent for their first time (``max_pages_per_host``)."""
        assert self._quota is not None
        return self._quota - self.hosts[host].stats.first_requests

    def _take_fresh(self, origin: str, host: str, count: int) -> list[UrlTask]:
        """Up to ``count`` new requests of the origin, within the host's quota; a host that
        reaches it has its queued URLs counted as over quota and dropped."""
        if self._quota is not None:
            count = min(count, self._quota_left(host))
        tasks = self.frontier.pop(origin, count, max_url_bytes=MAX_BATCH_URL_BYTES)
        if tasks:
            self.stats.host(origin).first_requests += len(tasks)
        if self._quota is not None and self._quota_left(host) <= 0:
            dropped = self.frontier.pop(origin, self.frontier.queued_at(origin))
            self.stats.totals.over_quota += len(dropped)
            self.stats.host(origin).at_quota = True
        return tasks

    # -- dispatch --------------------------------------------------------------------------------

    def plan(self) -> DispatchPlan:
        """Cut batches from the hosts that may be ready (``OriginWatch``: what changed, not
        every host): each host's requests are a slice with its own lease, and slices share
        batches (``BatchCutter``), new work and retries apart."""
        now = self._clock()
        self._dispatched_at = now
        plan = DispatchPlan()
        limits = {"max_requests": self.spec.batch_size, "max_url_bytes": MAX_BATCH_URL_BYTES}
        # A batch or robots.txt fetch runs on one fleet's queue: each fleet is cut apart.
        cutters: dict[str | None, tuple[BatchCutter, BatchCutter]] = {}
        robots_of: dict[str | None, list[RobotsTarget]] = {}
        robots_hosts: set[str] = set()  # one origin of a host per fetch_robots
        due = self._watch.take(now)
        due.sort(key=self._crawl_order)
        for i, origin in enumerate(due):
            cutting = sum(bool(c) for pair in cutters.values() for c in pair)
            if self.in_flight + cutting >= MAX_BATCHES_IN_FLIGHT:
                for rest in due[i:]:
                    self._watch.touch(rest)
                break
            record = self.hosts.of(origin)
            host = record.name
            fleet = self.fleets.of_host(host)
            if fleet is not None:
                opened = sum(bool(c) for c in cutters.get(fleet, ())) + (fleet in robots_of)
                if self._fleet_load[fleet] + opened >= self._fleet_cap:
                    self._fleet_waiters.setdefault(fleet, {})[origin] = None
                    continue  # the fleet's next landing touches it
            # robots.txt is fetched as soon as an origin has work, credits or not, so that
            # the first batch need not wait for it when credits arrive. It goes the way the
            # host's pages go (a proxy slot, if the host's route has proxies).
            if self.spec.obey_robots_txt and origin not in record.robots:
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
            if self.spec.obey_robots_txt and record.robots[origin] is None:
                continue  # its robots.txt is on the way, and touches it when it comes
            if record.sitemaps_unread:
                record.sitemap_waiters[origin] = None
                continue  # its sitemaps may carry pages over: they are read first
            state = self.pressure.state(host, now)
            if state == "abandoned":
                self._give_up(origin)
                continue
            if state == "parked":
                self._watch.wake_at(origin, self.pressure.host(host).parked_until)
                continue
            if fleet not in cutters:
                cutters[fleet] = (BatchCutter(**limits), BatchCutter(**limits))
            fresh_cut, retry_cut = cutters[fleet]
            if state == "probing":
                started = self._cut(plan, fresh_cut, self._probe(origin, host, now))
            else:
                started = self._cut(plan, fresh_cut, self._fresh_slice(origin, host, now))
                started = started or self._cut(
                    plan, retry_cut, self._retry_slice(origin, host, now)
                )
            if not started:
                self._wait(origin, host, now)
        for fresh_cut, retry_cut in cutters.values():
            self._cut(plan, fresh_cut, None, close=True)
            self._cut(plan, retry_cut, None, close=True)
        for robots in robots_of.values():
            self._plan_robots(plan, robots)
        self._plan_sitemaps(plan, now)
        self.proxies.return_unused()
        return plan

    def _proxy_slots(
        self, kind: str, origin: str, host: str, slots: int
    ) -> list[ProxyLease] | None:
        """A robots.txt or sitemap fetch's proxy slot: ``DIRECT`` without a route, else the
        granted lease, or None while the origin waits for it."""
        if self.proxies.route(host) is None:
            return DIRECT
        grant = self.proxies.take(kind, host, slots)
        if grant is None:
            if origin:  # (a sitemap waits in its queue, which every pass looks at)
                self.hosts[host].grant_waiters[origin] = None
            return None
        return grant.leases

    def proxy_grants(self, message: ProxyGrants) -> None:
        """The broker's grants: the origins that waited for them are due."""
        for name in self.proxies.receive(message):
            host = self.hosts[name]
            self._watch.touch_all(host.grant_waiters)
            host.grant_waiters.clear()

    def _plan_sitemaps(self, plan: DispatchPlan, now: float) -> None:
        """Sitemaps whose wait is over, in activities of SITEMAPS_PER_ACTIVITY, one per host
        each (a host's others wait for the next pass)."""
        later: list[tuple[float, int, SitemapTarget]] = []
        targets_of: dict[str | None, list[SitemapTarget]] = {}  # one fleet per activity
        hosts: set[str] = set()
        while self._sitemaps and self._sitemaps[0][0] <= now:
            if self.in_flight >= MAX_BATCHES_IN_FLIGHT:
                break
            entry = heapq.heappop(self._sitemaps)
            target = entry[2]
            host = urls.hostname(target.url)
            fleet = self.fleets.of_host(host)
            full = fleet is not None and self._fleet_load[fleet] >= self._fleet_cap
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
                self._started(fleet)
                plan.sitemaps.append(targets_of.pop(fleet))
                hosts -= {urls.hostname(t.url) for t in targets}
        for fleet, targets in targets_of.items():
            self._started(fleet)
            plan.sitemaps.append(targets)
        for entry in later:
            heapq.heappush(self._sitemaps, entry)

    def _queue_sitemap(self, url: str, *, nesting: int, attempt: int = 1, at: float = 0.0) -> None:
        """A sitemap to read: in scope, not too deeply nested, and once per crawl (a repeat
        is an index loop, or one sitemap named twice)."""
        totals = self.stats.totals
        if not urls.in_allowed_domains(url, self._domains):
            totals.out_of_scope += 1
            return
        if attempt == 1:
            if nesting > MAX_SITEMAP_NESTING:
                self._sitemap_error("too_deeply_nested")
                return
            if url in self._sitemaps_seen:
                if nesting > 0:
                    self._sitemap_error("loop")
                return
            self._sitemaps_seen.add(url)
        self._sitemap_seq += 1
        target = SitemapTarget(url=url, nesting=nesting, attempt=attempt)
        heapq.heappush(self._sitemaps, (at, self._sitemap_seq, target))
        if self._incremental and attempt == 1:
            self.hosts[urls.hostname(url)].sitemaps_unread += 1

    def _sitemap_read(self, url: str) -> None:
        """One of a host's sitemaps is read (or given up on): once all are, its origins that
        waited for them are looked at again."""
        host = self.hosts[urls.hostname(url)]
        host.sitemaps_unread = max(0, host.sitemaps_unread - 1)
        if host.sitemaps_unread:
            return
        self._watch.touch_all(host.sitemap_waiters)
        host.sitemap_waiters.clear()

    def _sitemap_error(self, kind: str) -> None:
        errors = self.stats.totals.sitemap_errors
        errors[kind] = errors.get(kind, 0) + 1

    def _plan_robots(self, plan: DispatchPlan, targets: list[RobotsTarget]) -> None:
        self._started(self.fleets.of_url(targets[0].origin))
        plan.robots.append(targets)

    def _started(self, fleet: str | None) -> None:
        """An activity planned, on the fleet's queue."""
        self.in_flight += 1
        if fleet is not None:
            self._fleet_load[fleet] += 1

    def _landed(self, url: str) -> None:
        """An activity whose first URL is ``url`` landed (or was cut off): its fleet's
        waiting origins are looked at again."""
        self.in_flight -= 1
        fleet = self.fleets.of_url(url)
        if fleet is not None:
            self._fleet_load[fleet] -= 1
            self._watch.touch_all(self._fleet_waiters.pop(fleet, {}))

    def fetch_queue(self, url: str) -> str | None:
        """The fleet that runs a planned activity whose first URL (or origin) is ``url``:
        a batch, robots.txt or sitemaps activity never mixes fleets. None: the main queue."""
        return self.fleets.of_url(url)

    def fleet_load(self) -> dict[str, int]:
        """Activities in flight on each fleet the routes name, for live status."""
        return dict(self._fleet_load)

    def _crawl_order(self, origin: str) -> tuple[int, int, int, int, str]:
        """Origins with new work first, shallowest next request first; then retries only."""
        key = self.frontier.order_key(origin)
        return (0, *key, "") if key is not None else (1, 0, 0, 0, origin)

    def _wait(self, origin: str, host: str, now: float) -> None:
        """An origin the pass looked at and did not dispatch: what it waits for."""
        fresh = self.frontier.queued_at(origin) > 0
        retry_at = self.retries.ready_at(origin)
        if not fresh and retry_at is None:
            return  # no work: new work touches it
        if self.politeness.in_use(host):
            # The host's batch is in flight (perhaps for its other origin): its landing
            # touches this origin.
            self.hosts[host].busy_waiters[origin] = None
            return
        rest = self.politeness.ready_at(host)
        if rest > now:
            self._watch.wake_at(origin, rest)
            return
        if self.proxies.waits(BATCH, host):
            self.hosts[host].grant_waiters[origin] = None
            return
        if retry_at is not None:
            if retry_at > now:
                self._watch.wake_at(origin, retry_at)
            elif self._retry_batches >= MAX_RETRY_BATCHES:
                self._watch.touch(origin)  # a retry batch that lands frees the budget
        if fresh and self.credits <= 0:
            self._watch.wait_for_credits(origin)

    def _cut(
        self,
        plan: DispatchPlan,
        cutter: BatchCutter,
        part: HostSlice | None,
        *,
        close: bool = False,
    ) -> bool:
        """Adds a host's slice to the batch being cut, and plans each batch that is done;
        whether there was a slice."""
        for batch in (cutter.add(part) if part else None, cutter.close() if close else None):
            if batch:
                self._started(self.fleets.of_url(batch[0].origin))
                self._retry_batches += batch[0].lease.retry
                plan.batches.append(batch)
        return part is not None

    def _retry_slice(self, origin: str, host: str, now: float) -> HostSlice | None:
        """Retries whose wait is over, within the host's retry budget and the shard's. (A host
        is in one batch in flight, so one lease per dispatch is all it gets.)"""
        ready = self.retries.ready_count(origin, now)
        if not ready or self._retry_batches >= MAX_RETRY_BATCHES:
            return None
        concurrency, delay = self.pressure.limits(host)
        leased = self._lease(
            host,
            queued=ready,
            now=now,
            max_concurrency=concurrency,
            delay_seconds=delay,
            retry_slots=self.pressure.retry_slots(host),
        )
        if leased is None:
            return None
        lease, proxies, most = leased
        tasks = self.retries.ready(origin, now, most)
        return HostSlice(origin, lease, proxies, tasks)

    def _fresh_slice(self, origin: str, host: str, now: float) -> HostSlice | None:
        """New work under the host's full lease. Retries whose wait is over ride along, up
        to the host's retry budget, rather than take the host's one batch on their own while
        its new pages wait (a broken URL would otherwise cost its host a batch per attempt)."""
        if self.credits <= 0:
            return None
        if self._quota is not None and self._quota_left(host) <= 0:
            self._take_fresh(origin, host, 0)  # what another origin of the host left queued
            return None
        concurrency, delay = self.pressure.limits(host)
        leased = self._lease(
            host,
            queued=min(self.frontier.queued_at(origin), self.credits),
            now=now,
            max_concurrency=concurrency,
            delay_seconds=delay,
        )
        if leased is None:
            return None
        lease, proxies, most = leased
        retries = self.retries.ready(origin, now, min(most, self.pressure.retry_slots(host)))
        tasks = self._take_fresh(origin, host, min(most - len(retries), self.credits))
        self.credits -= len(tasks)
        return HostSlice(origin, lease, proxies, retries + tasks)

    def _probe(self, origin: str, host: str, now: float) -> HostSlice | None:
        """A parked host whose cool-down is over gets one URL, alone, to see if it still blocks."""
        has_work = self.retries.ready_count(origin, now) > 0 or (
            self.credits > 0 and self.frontier.queued_at(origin) > 0
        )
        if not has_work:
            return None
        _, delay = self.pressure.limits(host)
        leased = self._lease(host, queued=1, now=now, max_concurrency=1, delay_seconds=delay)
        if leased is None:
            return None
        tasks = self.retries.ready(origin, now, 1)
        if not tasks:
            tasks = self._take_fresh(origin, host, 1)
            self.credits -= len(tasks)
        return HostSlice(origin, leased[0], leased[1], tasks)

    def _lease(
        self,
        host: str,
        *,
        queued: int,
        now: float,
        max_concurrency: int,
        delay_seconds: float,
        retry_slots: int | None = None,
    ) -> tuple[Lease, list[ProxyLease], int] | None:
        """The host's politeness lease, its proxy slots if it goes through a pool, and how
        many requests its slice may take; None while either lease is not to be had. The
        proxies are asked (of the broker) only once the politeness budget would give a lease,
        and the lease is taken only with their grant in hand: taking it and handing it back
        would make the host rest for nothing."""
        slots = self.politeness.slots_free(
            host, queued=queued, now=now, max_concurrency=max_concurrency, retry_slots=retry_slots
        )
        if not slots:
            return None
        most = self.spec.batch_size
        proxies = DIRECT
        if self.proxies.route(host) is not None:
            grant = self.proxies.take(BATCH, host, slots)
            if grant is None:
                return None
            proxies = grant.leases
            if grant.partial:
                most = min(most, PARTIAL_ROTATION_REQUESTS * len(proxies))
        lease = self.politeness.lease(
            host,
            queued=queued,
            now=now,
            max_concurrency=max_concurrency,
            delay_seconds=delay_seconds,
            retry_slots=retry_slots,
        )
        assert lease is not None, "slots_free() said the host had a lease to give"
        return lease, proxies, most

    def _give_up(self, origin: str) -> None:
        """A host given up on (parked too often): its waiting URLs end as failures."""
        # A waiting retry's last attempt is the one before the attempt it waited for.
        ended = [(t, t.attempt - 1) for t in self.retries.take_all(origin)]
        ended += [(t, 0) for t in self.frontier.pop(origin, self.frontier.queued_at(origin))]
        for task, requests in ended:
            self.stats.record_outcome(
                FetchOutcome(url=task.url, error=HOST_ABANDONED, attempt=max(1, requests))
            )
            self._end(origin, failure_record(task, HOST_ABANDONED, attempts=requests))

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
        """A slice as the batch activity gets it: the host's budget and robots rules."""
        robots = self.hosts.of(part.origin).robots.get(part.origin) or RobotsResult()
        return BatchSlice(
            origin=part.origin,
            count=len(part.tasks),
            # The broker may grant fewer slots than asked; more, if the host slowed meanwhile.
            concurrency=min(part.lease.slots, sum(p.slots for p in part.proxies))
            if part.proxies
            else part.lease.slots,
            delay_seconds=part.lease.delay_seconds,
            robots_key=robots.key,
            robots_disallow_all=robots.disallow_all,
            proxies=part.proxies,
        )

    # -- results ---------------------------------------------------------------------------------

    def landed(self, parts: list[HostSlice], result: BatchResult) -> None:
        """A batch's result: its hosts' leases back, then its outcomes, host by host (each
        host's own holds, retries, pressure and proxy health), then the links it found."""
        self._release(parts)
        self.stats.record_batch(
            attempt=result.attempt,
            origins=[p.origin for p in parts],
            now=self._clock(),
            queued=self.frontier.queued(),
        )
        starts = list(itertools.accumulate((len(p.tasks) for p in parts), initial=0))
        by_part: list[list[FetchOutcome]] = [[] for _ in parts]
        for outcome in result.outcomes:
            by_part[bisect.bisect_right(starts, outcome.task) - 1].append(outcome)
        for part, start, outcomes in zip(parts, starts, by_part, strict=False):
            self._absorb_host(part, start, outcomes)
        if self.spec.sitemaps == "only":
            return  # follows no links: the sitemaps are the crawl
        for link in result.links:
            task = UrlTask(
                url=link.url, depth=link.depth, priority=link.priority, request=link.request
            )
            self.route(task, count=link.count)

    def cut_off(self, parts: list[HostSlice]) -> None:
        """A batch a cancel cut off: the crawl ends before it, so each of its URLs ends as
        ``cancelled``, with the requests that completed before this one, and its record."""
        self._release(parts)
        for part in parts:
            for task in part.tasks:
                outcome = FetchOutcome(url=task.url, error=CANCELLED, attempt=task.attempt)
                self.stats.record_outcome(outcome)
                self._end(part.origin, failure_record(task, CANCELLED, attempts=task.attempt - 1))

    def _release(self, parts: list[HostSlice]) -> None:
        now = self._clock()
        self._landed(parts[0].origin)
        self._retry_batches -= parts[0].lease.retry
        for part in parts:
            self.politeness.release(part.lease, now=now)
            self.proxies.release(BATCH, part.lease.host)
            self._watch.touch(part.origin)
            host = self.hosts[part.lease.host]
            self._watch.touch_all(host.busy_waiters)
            host.busy_waiters.clear()

    def _absorb_host(self, part: HostSlice, start: int, outcomes: list[FetchOutcome]) -> None:
        """One host's outcomes; ``start`` is the index of its first request in the batch."""
        now = self._clock()
        host = part.lease.host
        retry = self.spec.retry
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
                self.stats.record_outcome(outcome, final=False)
                wait = backoff_seconds(outcome.attempt, retry, self._random())
                next_try = source.model_copy(update={"attempt": source.attempt + 1})
                self._retry_later(next_try, max(now + wait, hold_until))
                continue
            self.stats.record_outcome(outcome)
            if outcome.redirect_to and source is not None:
                self._follow_redirect(source, outcome.redirect_to, outcome.status)
        self.proxies.observe(host, outcomes)
        # A proxy that failed to carry a request tells nothing about the host.
        rest_until = self.pressure.observe(
            host,
            [o for o in outcomes if not is_proxy_failure(o)],
            now=now,
            jitter=self._random(),
        )
        if max(rest_until, hold_until) > now:
            self.politeness.rest(host, max(rest_until, hold_until))
        self.stats.record_pressure(host, self.pressure.host(host))

    def _retry_later(self, task: UrlTask, at: float) -> None:
        self.retries.push(task, at)
        self._watch.wake_at(urls.origin(task.url), at)

    def _follow_redirect(self, source: UrlTask, target: str, status: int | None) -> None:
        """The target, as Scrapy's redirect middleware would ask for it: the same request
        (callback, arguments, meta) at the new URL; a POST turned GET on a 302 or 303."""
        if source.redirects >= self.spec.max_redirects:
            self.stats.totals.redirects_exceeded += 1
            return
        request = source.request
        if request is not None and status in (302, 303) and request.method != "GET":
            request = request.model_copy(update={"method": "GET", "body_b64": ""})
        self.route(
            UrlTask(
                url=target,
                depth=source.depth,
                priority=source.priority,
                redirects=source.redirects + 1,
                request=request,
            )
        )

    def robots_landed(
        self, targets: list[RobotsTarget], results: list[RobotsResult] | None
    ) -> None:
        """A fetch_robots activity's results (None: it failed, so every origin's robots.txt
        counts as not fetched)."""
        self._landed(targets[0].origin)
        for target in targets:
            self.proxies.release(ROBOTS, self.hosts.of(target.origin).name)
        if results is None:
            results = [RobotsResult(error=ROBOTS_FETCH_FAILED) for _ in targets]
        for target, result in zip(targets, results, strict=True):
            origin = target.origin
            record = self.hosts.of(origin)
            self._watch.touch(origin)
            if target.proxies:
                # What the proxy did, for the broker's health of it.
                used = FetchOutcome(
                    url=origin,
                    status=result.status,
                    error=result.error,
                    proxy=target.proxies[0].proxy,
                )
                self.proxies.observe(record.name, [used])
            if target.proxies and result.error in PROXY_FAILURES:
                # The proxy failed, not the host: ask again, through another one.
                record.robots_tries[origin] = record.robots_tries.get(origin, 0) + 1
                if record.robots_tries[origin] < ROBOTS_PROXY_TRIES:
                    del record.robots[origin]
                    continue
            record.robots[origin] = result
            if self.spec.sitemaps != "off":
                for url in result.sitemaps:
                    self._queue_sitemap(url, nesting=0)

    def sitemap_entries(self, target: SitemapTarget, records: list[list[Any]]) -> None:
        """A page of a sitemap's entries (one store segment, read by the shell): pages go
        where links go, as depth-0 requests carrying their sitemap fields; nested sitemaps
        are read next. Fed a segment at a time, so no workflow task routes a whole 50,000-URL
        sitemap at once."""
        for kind, url, lastmod, changefreq, priority in records:
            if kind == "s":
                self._queue_sitemap(url, nesting=target.nesting + 1)
                continue
            self.stats.totals.sitemap_urls += 1
            task = _sitemap_task(url, lastmod, changefreq, priority)
            if task.request is not None and self.frontier.update_queued(task):
                continue  # queued already (the previous crawl's URL): now with its fields
            self.route(task, is_link=False)

    def sitemaps_landed(self, targets: list[SitemapTarget], results: list[SitemapResult]) -> None:
        """A fetch_sitemaps activity's results, once their entries are in: what was fetched,
        what went wrong (by class), and a failure that may pass retried as a page's would be."""
        self._landed(targets[0].url)
        now = self._clock()
        retry = self.spec.retry
        for target, result in zip(targets, results, strict=True):
            if target.proxies:
                self.proxies.release(SITEMAP, urls.hostname(target.url))
            passing = (result.status is None and result.error in RETRYABLE_ERRORS) or (
                result.status is not None and result.status >= 500
            )
            if passing and target.attempt < retry.max_attempts:
                wait = backoff_seconds(target.attempt, retry, self._random())
                self._queue_sitemap(
                    target.url, nesting=target.nesting, attempt=target.attempt + 1, at=now + wait
                )
                continue
            if result.status is not None and 200 <= result.status < 300:
                self.stats.totals.sitemaps_fetched += 1
            if result.error:
                self._sitemap_error(result.error)
            if self._incremental:
                self._sitemap_read(target.url)

    # -- what the shard tells its parent ---------------------------------------------------------

    def idle(self) -> bool:
        """Nothing in flight, no retry waiting, and no new work it may start."""
        return (
            not self.in_flight
            and not self.retries
            and not self._sitemaps
            and (self.frontier.queued() == 0 or self.credits == 0)
        )

    def ask_credits(self, *, idle: bool) -> CreditAsk:
        """Credits an idle shard with nothing queued gives back; and, only when running low,
        a request for at least a chunk and at most what is queued, so that the request
        changes rarely and a long queue needs few grants."""
        queued = self.frontier.queued()
        returned = 0
        if idle and queued == 0 and self.credits > 0:
            returned, self.credits = self.credits, 0
        low = self.credits < self.spec.batch_size and queued > self.credits
        least = self.spec.batch_size * max(2, self.spec.concurrency_per_host)
        wants = max(least, queued - self.credits) if low else 0
        return CreditAsk(idle=idle, wants=wants, returned=returned)

    def forwards_due(self) -> bool:
        """Links for other shards go in few, large reports: once enough wait, once the oldest
        waited FORWARD_WAIT_SECONDS, or at once when nothing of this shard is in flight (so a
        shard never sits on links while it has nothing else to do)."""
        if not self._outbox:
            return False
        waited = self._clock() - self._outbox_since
        return (
            self._outbox_size >= FORWARD_BATCH
            or waited >= FORWARD_WAIT_SECONDS
            or not self.in_flight
        )

    def has_forwards(self) -> bool:
        return bool(self._outbox)

    def take_forwards(self) -> dict[int, list[UrlTask]]:
        """The links waiting for other shards, by owning shard."""
        forwards = dict(sorted(self._outbox.items()))
        self._outbox, self._outbox_size = {}, 0
        return forwards

    def next_wake(self) -> float | None:
        """Seconds until an origin's wait ends (a rest, a retry's backoff, a park:
        ``OriginWatch``), a sitemap's retry or waiting links are due; zero if one of those
        came due after the last dispatch looked; None if nothing waits for a time. (A proxy's
        cool-down is the broker's: its grant wakes the shard.)"""
        now = self._clock()
        times: list[float] = []
        if self._outbox:
            times.append(self._outbox_since + FORWARD_WAIT_SECONDS)
        watched = self._watch.next_time()
        if watched is not None:
            times.append(watched)
        if self._sitemaps:
            times.append(self._sitemaps[0][0])
        if any(self._dispatched_at < t <= now for t in times) or (
            watched is not None and watched <= now
        ):
            return 0.0
        future = [t - now for t in times if t > now]
        return min(future) if future else None

    def totals(self) -> ShardTotals:
        """The counters, with the engine's levels (the shell adds its own)."""
        totals = self.stats.totals.model_copy()
        totals.in_flight_batches = self.in_flight
        totals.queued = self.frontier.queued()
        totals.seen = self.frontier.seen_count()
        totals.seen_set_bytes = self.frontier.seen_memory_bytes()
        totals.retry_waiting = len(self.retries)
        totals.parked_hosts = len(self.pressure.parked())
        totals.abandoned_hosts = len(self.pressure.abandoned())
        return totals

    def busiest_hosts(self, limit: int) -> dict[str, HostStats]:
        """The ``limit`` busiest hosts, and every parked or abandoned one."""
        busiest = sorted(self.stats.hosts.items(), key=lambda kv: (-kv[1].requests, kv[0]))
        return {
            name: stats
            for i, (name, stats) in enumerate(busiest)
            if i < limit or stats.state != "ok"
        }

    # -- continue-as-new -------------------------------------------------------------------------

    def export(self, kind: str) -> Iterable[Any]:
        """One kind of state (``STATE_KINDS``) as records, for a checkpoint's segments."""
        if kind == "frontier":
            return self.frontier.export()
        if kind == "hosts":
            return ([n, s.model_dump(mode="json")] for n, s in self.stats.hosts.items())
        if kind == "retries":
            return self.retries.export()
        if kind == "pressure":
            return self.pressure.export()
        if kind == "robots":
            return (
                [o, r.model_dump(mode="json")] for h in self.hosts for o, r in h.robots.items() if r
            )
        if kind == "sitemaps":
            queued = {entry[2].url for entry in self._sitemaps}
            waiting = (["q", at, t.model_dump(mode="json")] for at, _, t in sorted(self._sitemaps))
            done = (["s", url] for url in sorted(self._sitemaps_seen - queued))
            return itertools.chain(waiting, done)
        raise ValueError(f"unknown kind of shard state {kind!r}")

    def restore(self, kind: str, records: Iterable[Any]) -> None:
        """Records of one kind of state, from a checkpoint's segments."""
        if kind == "frontier":
            self.frontier.restore_queued(records)
        elif kind == "hosts":
            self.stats.restore_hosts((n, HostStats.model_validate(s)) for n, s in records)
        elif kind == "retries":
            self.retries.restore(list(records))
        elif kind == "pressure":
            self.pressure.restore(list(records))
        elif kind == "robots":
            for origin, robots in records:
                self.hosts.of(origin).robots[origin] = RobotsResult.model_validate(robots)
        elif kind == "sitemaps":
            for record in records:
                if record[0] == "q":
                    target = SitemapTarget.model_validate(record[2])
                    self._sitemaps_seen.add(target.url)
                    self._sitemap_seq += 1
                    heapq.heappush(self._sitemaps, (record[1], self._sitemap_seq, target))
                    if self._incremental:
                        self.hosts[urls.hostname(target.url)].sitemaps_unread += 1
                else:
                    self._sitemaps_seen.add(record[1])
        else:
            raise ValueError(f"unknown kind of shard state {kind!r}")

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
        yield "queued", self.frontier.queued()
        yield "retry_waiting", len(self.retries)
        yield "batches_in_flight", self.in_flight
        yield "parked_hosts", len(self.pressure.parked())
        yield "abandoned_hosts", len(self.pressure.abandoned())


def _sitemap_task(
    url: str, lastmod: str | None, changefreq: str | None, priority: float | None
) -> UrlTask:
    """A page a sitemap lists: a seed-like request (depth 0) whose record keeps the sitemap's
    fields, and whose priority (0.0 to 1.0, default 0.5) orders the frontier in tenths."""
    fields = {
        k: v
        for k, v in (("lastmod", lastmod), ("changefreq", changefreq), ("priority", priority))
        if v is not None
    }
    request = RequestData(meta={SITEMAP_META: fields}) if fields else None
    rank = round((0.5 if priority is None else priority) * 10) - 5
    return UrlTask(url=url, depth=0, priority=rank, request=request)
