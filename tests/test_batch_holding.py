"""A small batch of new work held open to fill (``DispatchPlanner``, HOLD_FILL) while the shard
has enough in flight, so that a broad crawl runs fewer, fuller batches; and never held where
it would only wait: few batches in flight, the shard at its limit, continue-as-new, finish."""

from __future__ import annotations

import pytest

from shardcrawl.policy.activity_slots import MAX_BATCHES_IN_FLIGHT
from shardcrawl.policy.dispatch_planner import HOLD_FILL, HOLD_IN_FLIGHT, HOLD_SECONDS
from shardcrawl.policy.shard_engine import ShardEngine
from tests.shard_engine_helpers import Clock, _engine, _ok, _seed, _urls

BATCH_SIZE = 20


def _busy_engine(clock: Clock, in_flight: int = HOLD_IN_FLIGHT) -> ShardEngine:
    """An engine with ``in_flight`` full batches of one host each in flight."""
    engine = _engine(clock, batch_size=BATCH_SIZE)
    for host in range(in_flight):
        _seed(engine, *(f"http://busy{host}.test/{i}" for i in range(BATCH_SIZE)))
    engine.add_credits(10_000)
    assert len(engine.plan().batches) == engine.in_flight == in_flight
    return engine


def _host_urls(host: str, count: int) -> list[str]:
    return [f"http://{host}.test/{i}" for i in range(count)]


def test_a_small_batch_waits_to_fill_while_enough_are_in_flight() -> None:
    assert HOLD_FILL * BATCH_SIZE == 15
    clock = Clock()
    engine = _busy_engine(clock)
    _seed(engine, *_host_urls("x", 2))
    assert engine.plan().batches == [], "2 requests of 20: held open"
    assert engine.in_flight == HOLD_IN_FLIGHT and not engine.idle()
    assert engine.next_wake() == pytest.approx(HOLD_SECONDS)
    clock.now += HOLD_SECONDS / 2
    _seed(engine, *_host_urls("y", 10))
    assert engine.plan().batches == [], "12 of 20: still held"
    assert engine.next_wake() == pytest.approx(HOLD_SECONDS / 2), "the wait runs from the first"
    _seed(engine, *_host_urls("z", 5))
    (batch,) = engine.plan().batches
    assert sorted(_urls(batch)) == sorted(
        _host_urls("x", 2) + _host_urls("y", 10) + _host_urls("z", 5)
    )
    assert engine.in_flight == HOLD_IN_FLIGHT + 1


def test_a_held_batch_goes_after_its_wait_however_small() -> None:
    clock = Clock()
    engine = _busy_engine(clock)
    _seed(engine, *_host_urls("x", 1))
    assert engine.plan().batches == []
    clock.now += HOLD_SECONDS
    assert engine.next_wake() == 0.0, "its wait is over: dispatch again"
    (batch,) = engine.plan().batches
    assert _urls(batch) == _host_urls("x", 1)


def test_a_host_in_a_held_batch_has_its_next_work_wait_for_that_batch() -> None:
    clock = Clock()
    engine = _busy_engine(clock)
    _seed(engine, *_host_urls("x", 1))
    assert engine.plan().batches == []
    _seed(engine, "http://x.test/more")
    clock.now += HOLD_SECONDS
    (batch,) = engine.plan().batches
    assert _urls(batch) == _host_urls("x", 1), "one batch of a host at a time"
    engine.landed(batch, _ok(batch))
    assert engine.plan().batches == [], "its next work is held in turn"
    clock.now += HOLD_SECONDS
    (after,) = engine.plan().batches
    assert _urls(after) == ["http://x.test/more"]


def test_with_few_batches_in_flight_a_small_batch_goes_at_once() -> None:
    clock = Clock()
    engine = _busy_engine(clock, in_flight=HOLD_IN_FLIGHT - 1)
    _seed(engine, *_host_urls("x", 2))
    (batch,) = engine.plan().batches
    assert _urls(batch) == _host_urls("x", 2)


def test_at_the_shards_limit_nothing_is_held() -> None:
    clock = Clock()
    engine = _engine(clock, batch_size=2)
    _seed(engine, *(f"http://h{i}.test/" for i in range(200)))
    engine.add_credits(1_000)
    batches = engine.plan().batches
    assert len(batches) == engine.in_flight == MAX_BATCHES_IN_FLIGHT
    assert engine.next_wake() is None, "no batch held open"


def test_release_held_hands_over_the_open_batch_for_continue_as_new_or_finish() -> None:
    clock = Clock()
    engine = _busy_engine(clock)
    _seed(engine, *_host_urls("x", 3))
    assert engine.plan().batches == []
    with pytest.raises(AssertionError, match="release_held"):
        list(engine.export("frontier"))
    (batch,) = engine.release_held().batches
    assert _urls(batch) == _host_urls("x", 3)
    assert engine.in_flight == HOLD_IN_FLIGHT + 1
    assert engine.release_held().batches == []
    assert list(engine.export("frontier")) == [], "its URLs are in flight now, not queued"
