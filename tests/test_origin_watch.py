"""OriginWatch: a dispatch pass looks at what changed, not at every origin."""

from __future__ import annotations

from shardcrawl.policy.origin_watch import OriginWatch


def test_a_pass_takes_the_touched_origins_once():
    watch = OriginWatch()
    watch.touch("http://a")
    watch.touch("http://b")
    watch.touch("http://a")
    assert watch.take(now=0.0) == ["http://a", "http://b"]
    assert watch.take(now=0.0) == [], "an origin nothing happened to is not looked at again"


def test_a_wait_ends_at_its_time():
    watch = OriginWatch()
    watch.wake_at("http://a", 5.0)
    watch.wake_at("http://b", 2.0)
    assert watch.next_time() == 2.0
    assert watch.take(now=1.0) == []
    assert watch.take(now=2.0) == ["http://b"]
    assert watch.next_time() == 5.0
    assert watch.take(now=9.0) == ["http://a"]
    assert watch.next_time() is None


def test_origins_waiting_for_credits_are_due_when_credits_come():
    watch = OriginWatch()
    watch.wait_for_credits("http://a")
    watch.wait_for_credits("http://b")
    assert watch.take(now=0.0) == []
    watch.credits_arrived()
    assert watch.take(now=0.0) == ["http://a", "http://b"]
    watch.credits_arrived()
    assert watch.take(now=0.0) == []


def test_many_untouched_origins_cost_nothing():
    """10,000 origins waiting on their own times: a pass takes only those that are due."""
    watch = OriginWatch()
    for i in range(10_000):
        watch.wake_at(f"http://h{i}", 100.0 + i)
    watch.touch("http://new")
    assert sorted(watch.take(now=100.5)) == ["http://h0", "http://new"]
    assert len(watch) == 0
