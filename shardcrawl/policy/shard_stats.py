"""A shard's counters, per host and in total: plain bookkeeping the shard workflow feeds."""

from __future__ import annotations

from collections.abc import Iterable

from shardcrawl.core import urls
from shardcrawl.models import (
    DEFERRED,
    FORBIDDEN_ADDRESS,
    HOST_ABANDONED,
    NOT_FETCHED,
    ROBOTS_DISALLOWED,
    FetchOutcome,
    HostStats,
    ShardTotals,
)
from shardcrawl.models.records import CANCELLED
from shardcrawl.models.timeseries import SeriesRecorder, TimeSeries, note_recent
from shardcrawl.policy.host_table import HostState, HostTable
from shardcrawl.policy.retry_policy import is_retryable

__all__ = ["NOT_A_REQUEST", "ShardStats"]

NOT_A_REQUEST = frozenset(
    {ROBOTS_DISALLOWED, FORBIDDEN_ADDRESS, NOT_FETCHED, DEFERRED, HOST_ABANDONED, CANCELLED}
)


class ShardStats:
    """Counts what happened to the shard's URLs; ``totals`` is small enough for every report.
    Outcomes also go into the time series, at the time of the batch they came with (the shard
    passes ``now`` to ``record_batch``, which it calls before the batch's outcomes)."""

    def __init__(self, hosts: HostTable | None = None) -> None:
        """Per-host counters live in the shard's ``HostTable`` (a table of its own unless
        given one)."""
        self.totals = ShardTotals()
        self._hosts = HostTable() if hosts is None else hosts
        self._fetched_hosts = 0
        self._series = SeriesRecorder()
        self._now: float | None = None

    @property
    def series(self) -> TimeSeries:
        """The time series so far, for the shard's result and its checkpoint."""
        return self._series.export()

    @property
    def hosts(self) -> dict[str, HostStats]:
        """Every host's counters, by host name (a new dict: for checkpoints and results)."""
        return {h.name: h.stats for h in self._hosts}

    def host(self, url: str) -> HostStats:
        return self._hosts[urls.hostname(url)].stats

    def restore(
        self,
        totals: ShardTotals,
        hosts: dict[str, HostStats],
        *,
        series: TimeSeries | None = None,
    ) -> None:
        """Continue from a checkpoint's counters (and its time series, when given); the
        hosts' counters may come apart, in any number of calls."""
        self.totals = totals.model_copy(deep=True)
        if series is not None:
            self._series.load(series)
        self.restore_hosts(hosts.items())

    def restore_hosts(self, hosts: Iterable[tuple[str, HostStats]]) -> None:
        for name, stats in hosts:
            record = self._hosts[name]
            record.stats = stats
            # Every host with an outcome has one of these counted (see record_outcome).
            if not record.fetched and (stats.pages or stats.failures or stats.robots_disallowed):
                record.fetched = True
                self._fetched_hosts += 1

    def _fetched_from(self, url: str) -> None:
        """Count a host once, where it is fetched: another shard may hold link counts for it."""
        record = self._hosts[urls.hostname(url)]
        if not record.fetched:
            record.fetched = True
            self._fetched_hosts += 1
        self.totals.hosts = self._fetched_hosts

    def record_outcome(self, outcome: FetchOutcome, *, final: bool = True) -> None:
        """Count one attempt (a retry if ``attempt`` > 1); a ``final`` one also ends its URL
        (pages, failures, classes, and the histogram of retries per URL)."""
        host = self.host(outcome.url)
        self._fetched_from(outcome.url)
        if outcome.carried:
            # A page carried over unasked (its sitemap says unchanged): no request.
            host.pages += 1
            self.totals.pages += 1
            self.totals.pages_carried += 1
            return
        if outcome.error == ROBOTS_DISALLOWED:
            host.robots_disallowed += 1
            self.totals.robots_disallowed += 1
            return
        if outcome.error is None or outcome.error not in NOT_A_REQUEST:
            host.requests += 1
            self.totals.requests += 1
            self._record_attempt(outcome)
            if outcome.proxy is not None:
                host.proxies[outcome.proxy] = host.proxies.get(outcome.proxy, 0) + 1
        if outcome.blocked:
            host.blocked += 1
            self.totals.blocked += 1
            reason = outcome.blocked
            host.block_reasons[reason] = host.block_reasons.get(reason, 0) + 1
        if outcome.status == 429:
            host.throttled += 1
            self.totals.throttled += 1
        if outcome.attempt > 1 and outcome.error not in NOT_A_REQUEST:
            host.retries += 1
            self.totals.retries += 1
        if not final:
            return
        if outcome.spider_error:
            errors = self.totals.spider_errors
            errors[outcome.spider_error] = errors.get(outcome.spider_error, 0) + 1
        if outcome.attempt > 1:
            key = str(outcome.attempt - 1)
            self.totals.retry_histogram[key] = self.totals.retry_histogram.get(key, 0) + 1
        if is_retryable(outcome):
            host.gave_up += 1
            self.totals.gave_up += 1
        if outcome.change is not None:
            name = f"pages_{outcome.change}"
            setattr(self.totals, name, getattr(self.totals, name) + 1)
        if self._now is not None:
            ended = "pages" if outcome.status is not None else "failures"
            self._series.add(self._now, **{ended: 1})
            if outcome.status is not None:
                note_recent(self.totals.recent_pages, self._now, 1)
        if outcome.status is not None:
            host.pages += 1
            self.totals.pages += 1
            code = str(outcome.status)
            host.status_counts[code] = host.status_counts.get(code, 0) + 1
            return
        error = outcome.error or "unknown"
        host.failures += 1
        self.totals.failures += 1
        host.failure_classes[error] = host.failure_classes.get(error, 0) + 1

    def record_pressure(self, name: str, state: HostState) -> None:
        """Show the host's adaptive limits and breaker state with its counters."""
        host = self._hosts[name].stats
        host.state = state.state
        host.concurrency = state.concurrency
        host.delay_seconds = round(state.delay_seconds, 3)
        host.slowdowns = state.slowdowns
        host.recoveries = state.recoveries
        host.parks = state.parks

    def record_link(self, url: str, *, duplicate: bool) -> None:
        host = self.host(url)
        host.links_discovered += 1
        self.totals.links_discovered += 1
        if duplicate:
            host.duplicates += 1
            self.totals.duplicates += 1

    def _record_attempt(self, outcome: FetchOutcome) -> None:
        if self._now is None:
            return
        counts = {"requests": 1}
        if outcome.status is not None and 200 <= outcome.status < 600:
            counts[f"status_{outcome.status // 100}xx"] = 1
        if outcome.blocked:
            counts["blocked"] = 1
        if outcome.attempt > 1:
            counts["retries"] = 1
        self._series.add(self._now, **counts)

    def record_batch(
        self,
        *,
        attempt: int,
        origins: list[str],
        now: float | None = None,
        queued: int = 0,
    ) -> None:
        """A batch landed after ``attempt`` activity attempts; each of its hosts had them.
        ``now`` (workflow time) dates it and the outcomes that follow in the time series,
        with ``queued``, the frontier's depth then."""
        if now is not None:
            self._now = now
            self._series.gauge(now, "queued", queued)
        self.totals.batches += 1
        if attempt > 1:
            self.totals.batch_retries += attempt - 1
            for origin in origins:
                self.host(origin).batch_retries += attempt - 1
