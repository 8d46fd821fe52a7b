"""What a batch that landed (or was cut off) means for the shard: its hosts' slots back,
then its outcomes host by host (retries and their backoff, Retry-After holds, redirects to
follow, the host's pressure and its proxies' health), then the links it found."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from typing import Any

from shardcrawl.core import urls
from shardcrawl.models import DEFERRED, BatchResult, CrawlSpec, FetchOutcome, UrlTask
from shardcrawl.models.records import CANCELLED, failure_record
from shardcrawl.policy.activity_slots import ActivitySlots
from shardcrawl.policy.batch_cutter import HostSlice
from shardcrawl.policy.blocks import holds_host
from shardcrawl.policy.frontier import Frontier
from shardcrawl.policy.host_pressure import HostPressure
from shardcrawl.policy.host_table import HostTable
from shardcrawl.policy.origin_watch import OriginWatch
from shardcrawl.policy.politeness import Politeness
from shardcrawl.policy.proxy_health import is_proxy_failure
from shardcrawl.policy.proxy_router import BATCH, ProxyRouter
from shardcrawl.policy.retry_policy import backoff_seconds, will_retry
from shardcrawl.policy.retry_queue import RetryQueue
from shardcrawl.policy.shard_stats import ShardStats

__all__ = ["BatchAbsorber"]


class BatchAbsorber:
    """Exists so taking in a batch's result is apart from planning the next batches."""

    def __init__(
        self,
        spec: CrawlSpec,
        *,
        clock: Callable[[], float],
        random: Callable[[], float],
        watch: OriginWatch,
        slots: ActivitySlots,
        hosts: HostTable,
        frontier: Frontier,
        retries: RetryQueue,
        stats: ShardStats,
        politeness: Politeness,
        pressure: HostPressure,
        proxies: ProxyRouter,
        route: Callable[[UrlTask, int], None],
        end: Callable[[str, dict[str, Any]], None],
    ) -> None:
        """``route``: where a link or a redirect's target goes, with how often it was found
        (the engine's scope checks and owner); ``end``: where a URL cut off goes."""
        self._spec = spec
        self._clock = clock
        self._random = random
        self._watch = watch
        self._slots = slots
        self._hosts = hosts
        self._frontier = frontier
        self._retries = retries
        self._stats = stats
        self._politeness = politeness
        self._pressure = pressure
        self._proxies = proxies
        self._route = route
        self._end = end

    def landed(self, parts: list[HostSlice], result: BatchResult) -> None:
        """A batch's result: its hosts' slots back, then its outcomes, host by host (each
        host's own holds, retries, pressure and proxy health), then the links it found."""
        self._release(parts)
        self._stats.record_batch(
            attempt=result.attempt,
            origins=[p.origin for p in parts],
            now=self._clock(),
            queued=self._frontier.queued(),
        )
        starts = list(itertools.accumulate((len(p.tasks) for p in parts), initial=0))
        by_part: list[list[FetchOutcome]] = [[] for _ in parts]
        for outcome in result.outcomes:
            by_part[bisect.bisect_right(starts, outcome.task) - 1].append(outcome)
        for part, start, outcomes in zip(parts, starts, by_part, strict=False):
            self._absorb_host(part, start, outcomes)
        if self._spec.sitemaps == "only":
            return  # follows no links: the sitemaps are the crawl
        for link in result.links:
            task = UrlTask(
                url=link.url, depth=link.depth, priority=link.priority, request=link.request
            )
            self._route(task, link.count)

    def cut_off(self, parts: list[HostSlice]) -> None:
        """A batch a cancel cut off: the crawl ends before it, so each of its URLs ends as
        ``cancelled``, with the requests that completed before this one, and its record."""
        self._release(parts)
        for part in parts:
            for task in part.tasks:
                outcome = FetchOutcome(url=task.url, error=CANCELLED, attempt=task.attempt)
                self._stats.record_outcome(outcome)
                self._end(part.origin, failure_record(task, CANCELLED, attempts=task.attempt - 1))

    def _release(self, parts: list[HostSlice]) -> None:
        now = self._clock()
        self._slots.landed(parts[0].origin)
        self._slots.retry_batches -= parts[0].allotment.retry
        for part in parts:
            self._politeness.release(part.allotment, now=now)
            self._proxies.release(BATCH, part.allotment.host)
            self._watch.touch(part.origin)
            host = self._hosts[part.allotment.host]
            self._watch.touch_all(host.busy_waiters)
            host.busy_waiters.clear()

    def _absorb_host(self, part: HostSlice, start: int, outcomes: list[FetchOutcome]) -> None:
        """One host's outcomes; ``start`` is the index of its first request in the batch."""
        now = self._clock()
        host = part.allotment.host
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
                wait = backoff_seconds(outcome.attempt, retry, self._random())
                next_try = source.model_copy(update={"attempt": source.attempt + 1})
                self._retry_later(next_try, max(now + wait, hold_until))
                continue
            self._stats.record_outcome(outcome)
            if outcome.redirect_to and source is not None:
                self._follow_redirect(source, outcome.redirect_to, outcome.status)
        self._proxies.observe(host, outcomes)
        # A proxy that failed to carry a request tells nothing about the host.
        rest_until = self._pressure.observe(
            host,
            [o for o in outcomes if not is_proxy_failure(o)],
            now=now,
            jitter=self._random(),
        )
        if max(rest_until, hold_until) > now:
            self._politeness.rest(host, max(rest_until, hold_until))
        self._stats.record_pressure(host, self._pressure.host(host))

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
            ),
            1,
        )
