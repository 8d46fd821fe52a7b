"""One host's slice of a batch: its politeness allotment and proxy leases, how many requests it
takes (new work, retries, or a parked host's probe), within the host's quota and the shard's
page credits."""

from __future__ import annotations

from shardcrawl.models import BatchSlice, CrawlSpec, ProxyLease, RobotsResult, UrlTask
from shardcrawl.policy.activity_slots import MAX_RETRY_BATCHES, ActivitySlots
from shardcrawl.policy.batch_cutter import HostSlice
from shardcrawl.policy.frontier import Frontier
from shardcrawl.policy.host_pressure import HostPressure
from shardcrawl.policy.host_table import HostTable
from shardcrawl.policy.page_credits import PageCredits
from shardcrawl.policy.politeness import Allotment, Politeness
from shardcrawl.policy.proxy_router import BATCH, DIRECT, ProxyRouter
from shardcrawl.policy.retry_queue import RetryQueue
from shardcrawl.policy.segments import INLINE_PAYLOAD_BYTES
from shardcrawl.policy.shard_stats import ShardStats

__all__ = ["MAX_BATCH_URL_BYTES", "PARTIAL_ROTATION_REQUESTS", "HostSlicer"]

MAX_BATCH_URL_BYTES = INLINE_PAYLOAD_BYTES // 2
# A rotating host whose lease covers only part of its pool's healthy proxies gets at most this
# many requests per proxy of the lease in its batch, so the next lease rotates on soon enough
# that any 100 consecutive requests of the host spread evenly over the pool, within 20%.
PARTIAL_ROTATION_REQUESTS = 10


class HostSlicer:
    """Exists so what one host may send now is decided in one place; within the credits."""

    def __init__(
        self,
        spec: CrawlSpec,
        *,
        frontier: Frontier,
        retries: RetryQueue,
        hosts: HostTable,
        stats: ShardStats,
        politeness: Politeness,
        pressure: HostPressure,
        proxies: ProxyRouter,
        slots: ActivitySlots,
        credits: PageCredits,
    ) -> None:
        self._spec = spec
        self._quota = spec.max_pages_per_host
        self._frontier = frontier
        self._retries = retries
        self._hosts = hosts
        self._stats = stats
        self._politeness = politeness
        self._pressure = pressure
        self._proxies = proxies
        self._slots = slots
        self._credits = credits

    def at_quota(self, host: str) -> bool:
        """Whether the host has used up ``max_pages_per_host``."""
        return self._quota is not None and self._quota_left(host) <= 0

    def _quota_left(self, host: str) -> int:
        """URLs the host may still be sent for their first time (``max_pages_per_host``)."""
        assert self._quota is not None
        return self._quota - self._hosts[host].stats.first_requests

    def _take_fresh(self, origin: str, host: str, count: int) -> list[UrlTask]:
        """Up to ``count`` new requests of the origin, within the host's quota; a host that
        reaches it has its queued URLs counted as over quota and dropped."""
        if self._quota is not None:
            count = min(count, self._quota_left(host))
        tasks = self._frontier.pop(origin, count, max_url_bytes=MAX_BATCH_URL_BYTES)
        if tasks:
            self._stats.host(origin).first_requests += len(tasks)
        if self._quota is not None and self._quota_left(host) <= 0:
            dropped = self._frontier.pop(origin, self._frontier.queued_at(origin))
            self._stats.totals.over_quota += len(dropped)
            self._stats.host(origin).at_quota = True
        return tasks

    def retry_slice(self, origin: str, host: str, now: float) -> HostSlice | None:
        """Retries whose wait is over, within the host's retry budget and the shard's. (A host
        is in one batch in flight, so one allotment per dispatch is all it gets.)"""
        ready = self._retries.ready_count(origin, now)
        if not ready or self._slots.retry_batches >= MAX_RETRY_BATCHES:
            return None
        concurrency, delay = self._pressure.limits(host)
        allotted = self._allot(
            host,
            queued=ready,
            now=now,
            max_concurrency=concurrency,
            delay_seconds=delay,
            retry_slots=self._pressure.retry_slots(host),
        )
        if allotted is None:
            return None
        allotment, proxies, most = allotted
        tasks = self._retries.ready(origin, now, most)
        return HostSlice(origin, allotment, proxies, tasks)

    def fresh_slice(self, origin: str, host: str, now: float) -> HostSlice | None:
        """New work under the host's full allotment. Retries whose wait is over ride along, up
        to the host's retry budget, rather than take the host's one batch on their own while
        its new pages wait (a broken URL would otherwise cost its host a batch per attempt)."""
        if self._credits.count <= 0:
            return None
        if self.at_quota(host):
            self._take_fresh(origin, host, 0)  # what another origin of the host left queued
            return None
        concurrency, delay = self._pressure.limits(host)
        allotted = self._allot(
            host,
            queued=min(self._frontier.queued_at(origin), self._credits.count),
            now=now,
            max_concurrency=concurrency,
            delay_seconds=delay,
        )
        if allotted is None:
            return None
        allotment, proxies, most = allotted
        retries = self._retries.ready(origin, now, min(most, self._pressure.retry_slots(host)))
        tasks = self._take_fresh(origin, host, min(most - len(retries), self._credits.count))
        self._credits.count -= len(tasks)
        return HostSlice(origin, allotment, proxies, retries + tasks)

    def probe(self, origin: str, host: str, now: float) -> HostSlice | None:
        """A parked host whose cool-down is over gets one URL, alone, to see if it still blocks."""
        has_work = self._retries.ready_count(origin, now) > 0 or (
            self._credits.count > 0 and self._frontier.queued_at(origin) > 0
        )
        if not has_work:
            return None
        _, delay = self._pressure.limits(host)
        allotted = self._allot(host, queued=1, now=now, max_concurrency=1, delay_seconds=delay)
        if allotted is None:
            return None
        tasks = self._retries.ready(origin, now, 1)
        if not tasks:
            tasks = self._take_fresh(origin, host, 1)
            self._credits.count -= len(tasks)
        return HostSlice(origin, allotted[0], allotted[1], tasks)

    def _allot(
        self,
        host: str,
        *,
        queued: int,
        now: float,
        max_concurrency: int,
        delay_seconds: float,
        retry_slots: int | None = None,
    ) -> tuple[Allotment, list[ProxyLease], int] | None:
        """The host's politeness allotment, its proxy slots if it goes through a pool, and how
        many requests its slice may take; None while either is not to be had. The
        proxies are asked (of the broker) only once the politeness budget would give slots,
        and the allotment is taken only with their grant in hand: taking it and handing it back
        would make the host rest for nothing."""
        slots = self._politeness.slots_free(
            host, queued=queued, now=now, max_concurrency=max_concurrency, retry_slots=retry_slots
        )
        if not slots:
            return None
        most = self._spec.batch_size
        proxies = DIRECT
        if self._proxies.route(host) is not None:
            grant = self._proxies.take(BATCH, host, slots)
            if grant is None:
                return None
            proxies = grant.leases
            if grant.partial:
                most = min(most, PARTIAL_ROTATION_REQUESTS * len(proxies))
        allotment = self._politeness.allot(
            host,
            queued=queued,
            now=now,
            max_concurrency=max_concurrency,
            delay_seconds=delay_seconds,
            retry_slots=retry_slots,
        )
        assert allotment is not None, "slots_free() said the host had slots to give"
        return allotment, proxies, most

    def batch_slice(self, part: HostSlice) -> BatchSlice:
        """A slice as the batch activity gets it: the host's budget and robots rules."""
        robots = self._hosts.of(part.origin).robots.get(part.origin) or RobotsResult()
        return BatchSlice(
            origin=part.origin,
            count=len(part.tasks),
            # The broker may grant fewer slots than asked; more, if the host slowed meanwhile.
            concurrency=min(part.allotment.slots, sum(p.slots for p in part.proxies))
            if part.proxies
            else part.allotment.slots,
            delay_seconds=part.allotment.delay_seconds,
            robots_key=robots.key,
            robots_disallow_all=robots.disallow_all,
            proxies=part.proxies,
        )
