"""Per-host politeness budgets allotted to batches: never more slots or requests than allowed."""

from __future__ import annotations

import random

import pytest

from shardcrawl.policy.politeness import Allotment, Politeness

HOST = "example.com"


def test_single_batch_of_work_gets_every_slot() -> None:
    p = Politeness(max_concurrency=4, delay_seconds=0.0)
    allotment = p.allot(HOST, queued=10, now=0.0)
    assert allotment == Allotment(host=HOST, slots=4, delay_seconds=0.0)
    assert p.in_use(HOST) == 4


def test_exactly_one_batch_of_work_gets_every_slot() -> None:
    p = Politeness(max_concurrency=8, delay_seconds=1.0)
    allotment = p.allot(HOST, queued=50, now=0.0)
    assert allotment is not None
    assert allotment.slots == 8


def test_full_host_gets_no_lease() -> None:
    p = Politeness(max_concurrency=2, delay_seconds=0.0)
    assert p.allot(HOST, queued=5, now=0.0) is not None
    assert p.allot(HOST, queued=5, now=0.0) is None


def test_no_queued_work_gets_no_lease() -> None:
    p = Politeness(max_concurrency=2, delay_seconds=0.0)
    assert p.allot(HOST, queued=0, now=0.0) is None
    assert p.in_use(HOST) == 0


def test_one_batch_per_host_at_a_time_with_the_whole_budget() -> None:
    p = Politeness(max_concurrency=8, delay_seconds=0.5)
    allotment = p.allot(HOST, queued=5000, now=0.0)
    assert allotment is not None and (allotment.slots, allotment.delay_seconds) == (8, 0.5)
    assert p.allot(HOST, queued=5000, now=0.0) is None, "a second batch of a busy host"
    assert p.allot(HOST, queued=5000, now=0.0, retry_slots=1) is None
    p.release(allotment, now=0.0)
    assert p.allot(HOST, queued=5000, now=0.5) is not None


@pytest.mark.parametrize(
    ("max_concurrency", "delay", "retry_slots", "slots", "expected"),
    [(4, 1.0, 1, 1, 4.0), (4, 1.0, 2, 2, 2.0), (6, 0.5, 3, 3, 1.0), (4, 0.0, 1, 1, 0.0)],
)
def test_a_retry_batch_holds_its_budget_and_a_delay_that_keeps_the_rate(
    max_concurrency: int, delay: float, retry_slots: int, slots: int, expected: float
) -> None:
    p = Politeness(max_concurrency=max_concurrency, delay_seconds=delay)
    allotment = p.allot(HOST, queued=100, now=0.0, retry_slots=retry_slots)
    assert allotment is not None and allotment.retry
    assert allotment.slots == slots
    assert allotment.delay_seconds == pytest.approx(expected)
    # Scrapy sends one request per DOWNLOAD_DELAY per batch: never faster than the budget.
    if expected:
        assert 1 / allotment.delay_seconds <= max_concurrency / (delay * max_concurrency) + 1e-9


def test_release_returns_slots() -> None:
    p = Politeness(max_concurrency=4, delay_seconds=0.0)
    allotment = p.allot(HOST, queued=10, now=0.0)
    assert allotment is not None
    p.release(allotment, now=1.0)
    assert p.in_use(HOST) == 0
    again = p.allot(HOST, queued=10, now=1.0)
    assert again is not None and again.slots == 4


def test_host_rests_one_delay_after_release() -> None:
    p = Politeness(max_concurrency=2, delay_seconds=3.0)
    allotment = p.allot(HOST, queued=10, now=100.0)
    assert allotment is not None
    p.release(allotment, now=110.0)
    assert p.ready_at(HOST) == pytest.approx(113.0)
    assert p.allot(HOST, queued=10, now=110.0) is None
    assert p.allot(HOST, queued=10, now=112.999) is None
    after = p.allot(HOST, queued=10, now=113.0)
    assert after is not None
    assert after.slots == 2


def test_no_rest_without_delay() -> None:
    p = Politeness(max_concurrency=1, delay_seconds=0.0)
    allotment = p.allot(HOST, queued=1, now=5.0)
    assert allotment is not None
    p.release(allotment, now=5.0)
    assert p.allot(HOST, queued=1, now=5.0) is not None


def test_hosts_are_independent() -> None:
    p = Politeness(max_concurrency=2, delay_seconds=5.0)
    a = p.allot("a.example", queued=10, now=0.0)
    assert a is not None and a.slots == 2
    b = p.allot("b.example", queued=10, now=0.0)
    assert b is not None and b.slots == 2
    p.release(a, now=1.0)
    assert p.allot("a.example", queued=10, now=2.0) is None
    assert p.in_use("b.example") == 2
    c = p.allot("c.example", queued=10, now=2.0)
    assert c is not None and c.slots == 2


def test_unknown_host_is_free_and_ready() -> None:
    p = Politeness(max_concurrency=2, delay_seconds=5.0)
    assert p.in_use("never.example") == 0
    assert p.ready_at("never.example") == 0.0


def test_randomized_lease_release_never_exceeds_budget() -> None:
    rng = random.Random(1234)
    max_concurrency, delay = 5, 0.25
    p = Politeness(max_concurrency=max_concurrency, delay_seconds=delay)
    hosts = ["a.example", "b.example", "c.example"]
    held: dict[str, list[Allotment]] = {h: [] for h in hosts}
    now = 0.0
    granted = 0
    for _ in range(1000):
        now += rng.choice([0.0, 0.05, 0.1, 0.3])
        host = rng.choice(hosts)
        if held[host] and rng.random() < 0.45:
            allotment = held[host].pop(rng.randrange(len(held[host])))
            p.release(allotment, now=now)
        else:
            allotment = p.allot(host, queued=rng.randrange(0, 300), now=now)
            if allotment is not None:
                granted += 1
                assert allotment.host == host
                assert 1 <= allotment.slots <= max_concurrency
                assert allotment.delay_seconds == pytest.approx(
                    delay * max_concurrency / allotment.slots
                )
                held[host].append(allotment)
        for h in hosts:
            in_use = sum(allotment.slots for allotment in held[h])
            assert in_use <= max_concurrency
            assert p.in_use(h) == in_use
            rate = sum(1 / allotment.delay_seconds for allotment in held[h])
            assert rate <= 1 / delay + 1e-9
    assert granted > 100


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_concurrency": 0, "delay_seconds": 1.0}, "max_concurrency"),
        ({"max_concurrency": -3, "delay_seconds": 1.0}, "max_concurrency"),
        ({"max_concurrency": 2, "delay_seconds": -0.1}, "delay_seconds"),
    ],
)
def test_invalid_constructor_args_raise_value_error_naming_the_argument(
    kwargs: dict[str, float], name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        Politeness(**kwargs)  # type: ignore[arg-type]
