"""Retry decisions, backoff, block signals, Retry-After, adaptive host pressure, the circuit
breaker, the retry queue and the retry budget: the pure parts, without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shardcrawl.models import BlockSpec, FetchOutcome, RetrySpec, UrlTask
from shardcrawl.policy.blocks import block_reason, holds_host, retry_after_seconds
from shardcrawl.policy.host_pressure import HostPressure
from shardcrawl.policy.politeness import Politeness
from shardcrawl.policy.retry_policy import backoff_seconds, is_retryable, will_retry
from shardcrawl.policy.retry_queue import RetryQueue

URL = "http://a.example/x"
RETRY = RetrySpec(max_attempts=3, backoff_base_seconds=1.0, backoff_max_seconds=10.0)


@pytest.mark.parametrize(
    ("status", "error", "blocked", "retryable"),
    [
        (500, None, None, True),
        (503, None, None, True),
        (429, None, None, True),
        (408, None, None, True),
        (404, None, None, False),
        (410, None, None, False),
        (403, None, None, False),
        (403, None, "status:403", True),
        (200, None, "marker:captcha", True),
        (200, None, None, False),
        (None, "timeout", None, True),
        (None, "connection_refused", None, True),
        (None, "dns", None, True),
        (None, "oversize", None, False),
        (None, "robots_disallowed", None, False),
        (None, "forbidden_address", None, False),
        (None, "tls", None, False),
        (None, "batch_failed", None, False),
    ],
)
def test_what_is_retried(status, error, blocked, retryable) -> None:
    outcome = FetchOutcome(url=URL, status=status, error=error, blocked=blocked)
    assert is_retryable(outcome) is retryable


def test_attempts_run_out_and_dns_gets_one_retry() -> None:
    assert will_retry(FetchOutcome(url=URL, status=503, attempt=2), RETRY)
    assert not will_retry(FetchOutcome(url=URL, status=503, attempt=3), RETRY)
    assert will_retry(FetchOutcome(url=URL, error="dns", attempt=1), RETRY)
    assert not will_retry(FetchOutcome(url=URL, error="dns", attempt=2), RETRY)


def test_backoff_doubles_is_capped_and_jittered_within_half_to_full() -> None:
    assert backoff_seconds(1, RETRY, 0.0) == pytest.approx(0.5)
    assert backoff_seconds(1, RETRY, 0.999) == pytest.approx(1.0, abs=1e-3)
    assert backoff_seconds(3, RETRY, 0.0) == pytest.approx(2.0)
    assert backoff_seconds(10, RETRY, 0.999) <= RETRY.backoff_max_seconds


def test_block_signals_by_status_challenge_redirect_and_body_marker() -> None:
    blocks = BlockSpec()
    assert block_reason(403, b"", None, blocks) == "status:403"
    assert block_reason(429, b"", None, blocks) == "status:429"
    assert block_reason(302, b"", "http://a.example/captcha?r=1", blocks) == "challenge:/captcha"
    assert block_reason(302, b"", "http://a.example/next", blocks) is None
    assert block_reason(200, b"<h1>Access Denied</h1>", None, blocks) == "marker:access denied"
    assert block_reason(200, b"x" * 40_000 + b"captcha", None, blocks) is None, "beyond 32 KB"
    assert block_reason(200, b"<title>ok</title>", None, blocks) is None
    assert block_reason(403, b"", None, BlockSpec(statuses=[])) is None


@pytest.mark.parametrize(
    ("status", "blocked", "holds"),
    [
        (429, None, True),
        (503, None, True),
        (403, "status:403", True),
        (200, "marker:captcha", True),
        (301, None, False),
        (200, None, False),
        (None, None, False),
    ],
)
def test_which_retry_after_holds_the_host(status, blocked, holds) -> None:
    assert holds_host(status, blocked) is holds


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(b"3", now=now) == 3.0
    later = format_datetime(now + timedelta(seconds=90), usegmt=True).encode()
    assert retry_after_seconds(later, now=now) == pytest.approx(90.0)
    past = format_datetime(now - timedelta(seconds=90), usegmt=True).encode()
    assert retry_after_seconds(past, now=now) == 0.0
    assert retry_after_seconds(b"soon", now=now) is None
    assert retry_after_seconds(None, now=now) is None
    assert retry_after_seconds(b"99999999", now=now) == 86_400.0


def pressure(**blocks: object) -> HostPressure:
    spec = BlockSpec(park_min_responses=4, park_window=10, park_seconds=5.0, **blocks)
    return HostPressure(max_concurrency=8, delay_seconds=0.0, blocks=spec, retry=RETRY)


def responses(n: int, *, status: int = 200, blocked: str | None = None) -> list[FetchOutcome]:
    return [FetchOutcome(url=f"{URL}/{i}", status=status, blocked=blocked) for i in range(n)]


def test_a_block_halves_concurrency_and_doubles_delay_then_success_recovers_slowly() -> None:
    p = pressure()
    p.observe("a", responses(1, status=429, blocked="status:429") + responses(3), now=0, jitter=0)
    assert p.limits("a") == (4, 0.25)
    p.observe("a", responses(1, status=429, blocked="status:429") + responses(5), now=1, jitter=0)
    assert p.limits("a") == (2, 0.5)
    for t in range(4):
        p.observe("a", responses(4), now=2 + t, jitter=0)
    assert p.limits("a") == (4, 0.0), "one step back per two good batches"
    assert (p.host("a").slowdowns, p.host("a").recoveries) == (2, 2)


def test_the_breaker_parks_probes_and_gives_up() -> None:
    p = pressure(give_up_after_parks=2)
    until = p.observe("a", responses(4, status=403, blocked="status:403"), now=10, jitter=0)
    assert until == 15.0 and p.state("a", 12) == "parked" and p.parked() == ["a"]
    assert p.state("a", 15) == "probing" and p.limits("a")[0] == 1
    until = p.observe("a", responses(1, status=403, blocked="status:403"), now=15, jitter=0)
    assert p.state("a", 16) == "abandoned" and p.abandoned() == ["a"]
    assert p.host("a").parks == 2


def test_a_good_probe_closes_the_breaker_at_one_slot() -> None:
    p = pressure()
    p.observe("a", responses(4, status=403, blocked="status:403"), now=0, jitter=0)
    assert p.state("a", 5) == "probing"
    p.observe("a", responses(1), now=5, jitter=0)
    assert p.state("a", 5) == "ok" and p.limits("a")[0] == 1
    assert p.host("a").parks_in_a_row == 0


def test_a_host_most_of_whose_requests_fail_backs_off_exponentially() -> None:
    p = pressure()
    assert p.observe("a", responses(4, status=503), now=0, jitter=0) == 0.0, "too few yet"
    first = p.observe("a", responses(2, status=503), now=0, jitter=0)
    second = p.observe("a", responses(2, status=503), now=0, jitter=0)
    assert (first, second) == (0.5, 1.0)
    assert p.observe("a", responses(2), now=0, jitter=0) == 0.0


def test_a_host_that_refuses_every_connection_rests_at_once() -> None:
    p = pressure()
    refused = [FetchOutcome(url=f"{URL}/1", error="connection_refused")]
    assert p.observe("a", refused, now=0, jitter=0) == 0.5


def test_broken_urls_on_a_healthy_host_never_rest_it() -> None:
    """A few URLs that always fail (a 500, a dropped connection) retried in batches of their
    own, among good pages: their failures are theirs, not the host's."""
    p = pressure()
    broken = [
        FetchOutcome(url=f"{URL}/broken", status=500),
        FetchOutcome(url=f"{URL}/dropped", error="connection_lost"),
    ]
    for step in range(30):
        assert p.observe("a", responses(3), now=step, jitter=0) == 0.0
        assert p.observe("a", broken[step % 2 :][:1], now=step, jitter=0) == 0.0
        assert p.observe("a", responses(1) + broken, now=step, jitter=0) == 0.0


def test_pressure_state_survives_export_and_restore() -> None:
    p = pressure()
    p.observe("a", responses(2, status=403, blocked="status:403"), now=0, jitter=0)
    q = pressure()
    q.restore(p.export())
    assert q.host("a") == p.host("a")


def test_retry_budget_caps_the_slots_retries_hold() -> None:
    polite = Politeness(max_concurrency=10, delay_seconds=0.0)
    retries = polite.allot("a", queued=100, now=0, retry_slots=2)
    assert retries is not None and retries.slots == 2 and retries.retry
    assert polite.allot("a", queued=100, now=0) is None, "one batch per host at a time"
    polite.release(retries, now=0)
    fresh = polite.allot("a", queued=100, now=0)
    assert fresh is not None and fresh.slots == 10 and not fresh.retry


def test_adaptive_limits_override_the_crawls_in_a_lease() -> None:
    polite = Politeness(max_concurrency=8, delay_seconds=0.0)
    allotment = polite.allot("a", queued=1, now=0, max_concurrency=2, delay_seconds=1.0)
    assert allotment is not None and allotment.slots == 2 and allotment.rest_seconds == 1.0
    assert polite.allot("a", queued=1, now=0, max_concurrency=2) is None
    polite.release(allotment, now=10)
    assert polite.ready_at("a") == 11.0


def test_retry_queue_releases_urls_when_their_wait_is_over() -> None:
    queue = RetryQueue()
    queue.push(UrlTask(url="http://a.example/1", attempt=2), ready_at=5.0)
    queue.push(UrlTask(url="http://a.example/2", attempt=2), ready_at=1.0)
    queue.push(UrlTask(url="http://b.example/1", attempt=3), ready_at=2.0)
    assert len(queue) == 3 and queue.ready_at("http://a.example") == 1.0
    assert queue.ready_at("http://b.example") == 2.0
    assert [t.url for t in queue.ready("http://a.example", 3.0, 10)] == ["http://a.example/2"]
    assert queue.ready_count("http://a.example", 3.0) == 0
    restored = RetryQueue()
    restored.restore(queue.export())
    assert len(restored) == 2
    assert [t.attempt for t in restored.take_all("http://b.example")] == [3]
    assert restored.origins() == ["http://a.example"]
