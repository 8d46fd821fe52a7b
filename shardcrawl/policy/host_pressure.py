"""Adaptive per-host pressure and the circuit breaker: how hard a shard may press each host.

A host that answers with blocks or 429s gets half the concurrency and twice the delay at once
(multiplicative decrease); one that answers well for a while gets one slot back, and a quarter
second less delay, per good batch (additive increase). A host whose block rate over its last
responses passes a threshold is *parked* for a cool-down that doubles each time, then *probed*
with a single URL; after ``give_up_after_parks`` parks in a row its URLs are failed, so that a
host that blocks everything cannot keep a crawl from ending.

A host rests (exponential backoff) only on host-level evidence: most of its recent requests
failing in retryable ways (5xx, timeouts, lost connections), or every request of a batch
refused or unresolved. A URL that fails on its own (a broken page among good ones) costs that
URL its attempts and backoff, and nothing more: its retry batches fail, but the host's recent
requests mostly succeed, so new pages do not wait behind it.

Plain and deterministic (the shard holds one); jitter comes from the caller.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from shardcrawl.models import BlockSpec, FetchOutcome, RetrySpec
from shardcrawl.policy.host_table import HEALTH_WINDOW, HostState, HostTable, State
from shardcrawl.policy.retry_policy import RETRYABLE_ERRORS, backoff_seconds, is_retryable

__all__ = ["HostPressure"]

DELAY_STEP_SECONDS = 0.25
MAX_DELAY_SECONDS = 60.0
GOOD_BATCHES_TO_RECOVER = 2
# Host-level evidence for a rest: of the host's last HEALTH_WINDOW requests, at least
# HEALTH_MIN_REQUESTS seen and FAILING_SHARE of them failing; or a batch whose every request
# was refused or did not resolve (the host, not a page, is down).
HEALTH_MIN_REQUESTS = 6
FAILING_SHARE = 0.75
HOST_DOWN_ERRORS = frozenset({"connection_refused", "dns"})


class HostPressure:
    def __init__(
        self,
        *,
        max_concurrency: int,
        delay_seconds: float,
        blocks: BlockSpec,
        retry: RetrySpec,
        hosts: HostTable | None = None,
    ) -> None:
        """The states live in the shard's ``HostTable`` (a table of its own unless given
        one); the names of parked and abandoned hosts are kept apart, so that counting them
        is not a scan of every host."""
        self.max_concurrency = max_concurrency
        self.base_delay = delay_seconds
        self.blocks = blocks
        self.retry = retry
        self._hosts = HostTable() if hosts is None else hosts
        self._parked: set[str] = set()
        self._abandoned: set[str] = set()

    def host(self, name: str) -> HostState:
        record = self._hosts[name]
        if record.pressure is None:
            record.pressure = HostState(
                concurrency=self.max_concurrency, delay_seconds=self.base_delay
            )
        return record.pressure

    def state(self, name: str, now: float) -> State:
        """The host's state now; a park whose cool-down is over becomes a probe."""
        record = self._hosts.find(name)
        host = record.pressure if record else None
        if host is None:
            return "ok"
        if host.state == "parked" and now >= host.parked_until:
            host.state = "probing"
        return host.state

    def limits(self, name: str) -> tuple[int, float]:
        """Concurrency and delay the host may have now (a probe gets one slot)."""
        host = self.host(name)
        if host.state == "probing":
            return 1, host.delay_seconds
        return host.concurrency, host.delay_seconds

    def retry_slots(self, name: str) -> int:
        """Most slots that retries of this host may hold: the retry budget."""
        concurrency, _ = self.limits(name)
        return max(1, int(concurrency * self.retry.budget_share))

    def observe(
        self, name: str, outcomes: list[FetchOutcome], *, now: float, jitter: float
    ) -> float:
        """Fold a batch's outcomes into the host's state; returns a time before which the
        host must rest (0 if none)."""
        host = self.host(name)
        if host.state in ("parked", "abandoned"):
            # A batch that was already out when the host was parked: the park stands.
            return host.parked_until if host.state == "parked" else 0.0
        responses = [o for o in outcomes if o.status is not None]
        blocked = [o for o in responses if o.blocked]
        throttled = any(o.status == 429 for o in responses)
        for o in responses:
            host.window.append(bool(o.blocked))
        while len(host.window) > self.blocks.park_window:
            host.window.popleft()
        rest_until = 0.0

        if host.state == "probing":
            if blocked or not responses:
                return self._park(name, host, now)
            host.state, host.parks_in_a_row, host.concurrency = "ok", 0, 1
            host.window.clear()
            self._parked.discard(name)
        if blocked or throttled:
            self._slow_down(host)
        elif responses:
            host.good_batches += 1
            if host.good_batches >= GOOD_BATCHES_TO_RECOVER and self._speed_up(host):
                host.good_batches = 0

        if self._host_failing(host, outcomes):
            host.failing_batches += 1
            rest_until = now + backoff_seconds(host.failing_batches, self.retry, jitter)
        elif responses:
            host.failing_batches = 0

        if len(host.window) >= self.blocks.park_min_responses and sum(
            host.window
        ) >= self.blocks.park_block_rate * len(host.window):
            return self._park(name, host, now)
        return rest_until

    @staticmethod
    def _host_failing(host: HostState, outcomes: list[FetchOutcome]) -> bool:
        """Adds the batch's requests to the host's recent window, then says whether the
        host, not just some of its URLs, is failing (see the module's doc)."""
        sent = [o for o in outcomes if o.status is not None or o.error in RETRYABLE_ERRORS]
        failing = [is_retryable(o) and not o.blocked and o.status != 429 for o in sent]
        host.recent_failures.extend(failing)
        if sent and all(o.error in HOST_DOWN_ERRORS for o in sent):
            return True
        recent = host.recent_failures
        return (
            any(failing)
            and len(recent) >= HEALTH_MIN_REQUESTS
            and sum(recent) >= FAILING_SHARE * len(recent)
        )

    def _slow_down(self, host: HostState) -> None:
        host.good_batches = 0
        host.concurrency = max(1, host.concurrency // 2)
        host.delay_seconds = min(MAX_DELAY_SECONDS, max(host.delay_seconds * 2, DELAY_STEP_SECONDS))
        host.slowdowns += 1

    def _speed_up(self, host: HostState) -> bool:
        concurrency = min(self.max_concurrency, host.concurrency + 1)
        delay = max(self.base_delay, host.delay_seconds - DELAY_STEP_SECONDS)
        if (concurrency, delay) == (host.concurrency, host.delay_seconds):
            return False
        host.concurrency, host.delay_seconds = concurrency, delay
        host.recoveries += 1
        return True

    def _park(self, name: str, host: HostState, now: float) -> float:
        host.parks += 1
        host.parks_in_a_row += 1
        host.window.clear()
        if host.parks_in_a_row >= self.blocks.give_up_after_parks:
            host.state = "abandoned"
            self._parked.discard(name)
            self._abandoned.add(name)
            return 0.0
        host.state = "parked"
        self._parked.add(name)
        host.parked_until = now + self.blocks.park_seconds * 2 ** (host.parks_in_a_row - 1)
        return host.parked_until

    def parked(self) -> list[str]:
        """Hosts parked or being probed."""
        return sorted(self._parked)

    def abandoned(self) -> list[str]:
        return sorted(self._abandoned)

    def export(self) -> list[list[Any]]:
        return [[h.name, h.pressure.export()] for h in self._hosts if h.pressure is not None]

    def restore(self, records: list[list[Any]]) -> None:
        for name, record in records:
            window = deque(record.pop("window"))
            recent = deque(record.pop("recent_failures", ()), maxlen=HEALTH_WINDOW)
            state = HostState(**record, window=window, recent_failures=recent)
            self._hosts[name].pressure = state
            if state.state in ("parked", "probing"):
                self._parked.add(name)
            elif state.state == "abandoned":
                self._abandoned.add(name)
