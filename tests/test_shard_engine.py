"""The shard's decisions without Temporal: ``ShardEngine`` with a test clock and random source.

Dispatch, robots.txt, credits, retries, rests, holds, links for other shards, a cancel, and
a continue-as-new's export and restore, each driven the way the workflow drives it: plan,
then hand each planned batch a result. Sitemaps: tests/test_shard_engine_sitemaps.py; many
hosts, the shard's batch limit and fleets: tests/test_shard_engine_scale.py.
"""

from __future__ import annotations

import pytest

from shardcrawl.core import urls
from shardcrawl.models import BatchResult, FetchOutcome, Link, RobotsResult, UrlTask
from shardcrawl.policy.batch_cutter import HostSlice
from shardcrawl.policy.shard_engine import MAX_RETRY_BATCHES, STATE_KINDS
from tests.shard_engine_helpers import Clock, _engine, _ok, _seed, _urls


def test_one_batch_spans_the_ready_hosts_each_with_its_own_lease() -> None:
    clock = Clock()
    engine = _engine(clock, concurrency_per_host=3, batch_size=50)
    _seed(engine, "http://a.test/", "http://b.test/", "http://b.test/2", "http://c.test/")
    engine.add_credits(100)
    plan = engine.plan()
    assert len(plan.batches) == 1 and not plan.robots
    (batch,) = plan.batches
    assert sorted(p.origin for p in batch) == ["http://a.test", "http://b.test", "http://c.test"]
    assert {p.allotment.slots for p in batch} == {3}
    assert sorted(_urls(batch)) == sorted(
        ["http://a.test/", "http://b.test/", "http://b.test/2", "http://c.test/"]
    )
    assert engine.credits == 96
    assert engine.in_flight == 1


def test_a_host_in_flight_waits_for_its_batch_and_its_links_come_next() -> None:
    clock = Clock()
    engine = _engine(clock)
    _seed(engine, "http://a.test/")
    engine.add_credits(10)
    (batch,) = engine.plan().batches
    engine.accept(UrlTask(url="http://a.test/more"), is_link=True)
    assert engine.plan().batches == [], "the host already has a batch in flight"
    engine.landed(batch, _ok(batch, {"http://a.test/": ["http://a.test/next"]}))
    assert engine.in_flight == 0
    (second,) = engine.plan().batches
    assert sorted(_urls(second)) == ["http://a.test/more", "http://a.test/next"]


def test_without_credits_nothing_goes_until_credits_arrive() -> None:
    clock = Clock()
    engine = _engine(clock)
    _seed(engine, "http://a.test/", "http://b.test/")
    assert engine.plan().batches == []
    assert engine.idle(), "no credits: nothing it may start"
    assert engine.ask_credits(idle=True).wants > 0
    engine.add_credits(1)
    (batch,) = engine.plan().batches
    assert len(_urls(batch)) == 1 and engine.credits == 0


def test_robots_txt_comes_first_and_once_per_origin() -> None:
    clock = Clock()
    engine = _engine(clock, obey_robots_txt=True)
    _seed(engine, "http://a.test/", "http://b.test/", "http://b.test:8080/")
    engine.add_credits(10)
    plan = engine.plan()
    assert plan.batches == []
    (targets,) = plan.robots
    assert sorted(t.origin for t in targets) == ["http://a.test", "http://b.test"]
    (other_port,) = engine.plan().robots
    assert [t.origin for t in other_port] == ["http://b.test:8080"], "one origin of a host each"
    assert engine.plan().robots == [], "asked for already"
    engine.robots_landed(targets, [RobotsResult() for _ in targets])
    engine.robots_landed(other_port, None)
    plan = engine.plan()
    assert plan.robots == []
    assert sum(len(_urls(b)) for b in plan.batches) == 2, "one origin per host at a time"
    assert engine.in_flight == 1


def test_a_host_is_one_record_whichever_of_its_origins_is_asked() -> None:
    """Two origins of one host share its budget, pressure, counters and waiters; each keeps
    its own robots.txt. A host only linked to has counters and nothing else."""
    clock = Clock()
    engine = _engine(clock, obey_robots_txt=True, shard_count=2)
    a_port = "http://a.test:8080"
    _seed(engine, "http://a.test/", f"{a_port}/")
    engine.add_credits(10)
    (first,) = engine.plan().robots
    (second,) = engine.plan().robots
    engine.robots_landed(first, [RobotsResult()])
    engine.robots_landed(second, [RobotsResult(disallow_all=True)])
    (batch,) = engine.plan().batches
    assert len(batch) == 1, "one batch per host, whichever origin"
    record = engine.hosts["a.test"]
    assert engine.hosts.of(a_port) is engine.hosts.of("http://a.test") is record
    assert record.budget.batches == 1 and record.budget.in_use == batch[0].allotment.slots
    (waiting,) = {"http://a.test", a_port} - {batch[0].origin}
    assert list(record.busy_waiters) == [waiting]
    assert record.robots[a_port] == RobotsResult(disallow_all=True)
    assert record.robots["http://a.test"] == RobotsResult()
    foreign = next(
        u
        for u in (f"http://f{i}.test/" for i in range(50))
        if urls.shard_of(urls.origin(u), 2) == 1
    )
    engine.landed(batch, _ok(batch, {t.url: [foreign, foreign] for t in batch[0].tasks}))
    assert record.pressure is not None and record.stats.pages == 1 and not record.busy_waiters
    (next_batch,) = engine.plan().batches
    assert [p.origin for p in next_batch] == [waiting], "the waiting origin goes next"
    linked = engine.hosts.find(urls.hostname(foreign))
    assert linked is not None and linked.stats.duplicates == 1
    assert linked.pressure is None and linked.budget.batches == 0
    assert len(engine.hosts) == 2


def test_a_failed_url_retries_after_its_backoff_riding_with_new_work() -> None:
    clock = Clock()
    engine = _engine(clock, retry={"max_attempts": 3, "backoff_base_seconds": 2.0})
    _seed(engine, "http://a.test/broken")
    engine.add_credits(10)
    (batch,) = engine.plan().batches
    tasks = [t for p in batch for t in p.tasks]
    failed = BatchResult(
        batch_id="b",
        outcomes=[FetchOutcome(url=tasks[0].url, task=0, status=500)],
        links=[],
        items_written=0,
    )
    engine.landed(batch, failed)
    assert len(engine.retries) == 1
    wait = engine.next_wake()
    assert wait is not None and 1.0 <= wait <= 2.0, "jittered base backoff"
    assert engine.plan().batches == [], "not before its backoff"
    engine.accept(UrlTask(url="http://a.test/new"), is_link=True)
    clock.now += wait
    (retry_with_new,) = engine.plan().batches
    (part,) = retry_with_new
    assert not part.allotment.retry, "it rides in the host's batch of new work"
    assert [(t.url, t.attempt) for t in part.tasks] == [
        ("http://a.test/broken", 2),
        ("http://a.test/new", 1),
    ]


def test_a_retry_alone_gets_a_retry_batch_within_the_retry_budget() -> None:
    clock = Clock()
    engine = _engine(clock, concurrency_per_host=10, retry={"max_attempts": 2})
    _seed(engine, "http://a.test/broken")
    engine.add_credits(1)
    (batch,) = engine.plan().batches
    url = batch[0].tasks[0].url
    engine.landed(
        batch,
        BatchResult(
            batch_id="b",
            outcomes=[FetchOutcome(url=url, task=0, error="timeout")],
            links=[],
            items_written=0,
        ),
    )
    clock.now += 60
    (retry_batch,) = engine.plan().batches
    (part,) = retry_batch
    assert part.allotment.retry and part.allotment.slots == 2, "20% of 10 slots"
    assert part.tasks[0].attempt == 2
    assert MAX_RETRY_BATCHES >= 1


def test_a_host_rests_its_delay_after_each_batch() -> None:
    clock = Clock()
    engine = _engine(clock, delay_seconds=1.5)
    _seed(engine, "http://a.test/")
    engine.add_credits(10)
    (batch,) = engine.plan().batches
    engine.landed(batch, _ok(batch, {"http://a.test/": ["http://a.test/2"]}))
    assert engine.plan().batches == []
    assert engine.next_wake() == pytest.approx(1.5)
    clock.now += 1.5
    (second,) = engine.plan().batches
    assert _urls(second) == ["http://a.test/2"]


def test_retry_after_holds_only_its_host() -> None:
    clock = Clock()
    engine = _engine(clock)
    _seed(engine, "http://a.test/", "http://b.test/")
    engine.add_credits(10)
    (batch,) = engine.plan().batches
    tasks = [t for p in batch for t in p.tasks]
    outcomes = [
        FetchOutcome(url=t.url, task=i, status=429, retry_after_seconds=30.0)
        if t.url.startswith("http://a.test")
        else FetchOutcome(url=t.url, task=i, status=200)
        for i, t in enumerate(tasks)
    ]
    links = [Link(url="http://a.test/2", depth=1), Link(url="http://b.test/2", depth=1)]
    engine.landed(batch, BatchResult(batch_id="b", outcomes=outcomes, links=links, items_written=1))
    (next_batch,) = engine.plan().batches
    assert _urls(next_batch) == ["http://b.test/2"], "a.test is held"
    clock.now += 30
    engine.landed(next_batch, _ok(next_batch))
    held = [u for b in engine.plan().batches for u in _urls(b)]
    assert sorted(held) == ["http://a.test/", "http://a.test/2"]


def test_links_for_other_shards_wait_for_a_report_and_are_sent_once() -> None:
    clock = Clock()
    engine = _engine(clock, shard_count=2)
    hosts = [f"http://h{i}.test" for i in range(100)]
    mine = next(h for h in hosts if urls.shard_of(h, 2) == 0)
    theirs = next(h for h in hosts if urls.shard_of(h, 2) == 1)
    _seed(engine, f"{mine}/")
    engine.add_credits(10)
    (batch,) = engine.plan().batches
    page = {f"{mine}/": [f"{theirs}/x", f"{theirs}/x", f"{mine}/y"]}
    engine.landed(batch, _ok(batch, page))
    assert engine.forwards_due(), "nothing in flight: send at once"
    assert {k: [t.url for t in v] for k, v in engine.take_forwards().items()} == {
        1: [f"{theirs}/x"]
    }
    engine.route(UrlTask(url=f"{theirs}/x", depth=1))
    assert not engine.has_forwards(), "forwarded once"
    assert engine.frontier.queued_at(mine) == 1


def test_a_batch_cut_off_by_a_cancel_ends_its_urls_with_a_record_each() -> None:
    clock = Clock()
    engine = _engine(clock)
    _seed(engine, "http://a.test/1", "http://a.test/2")
    engine.add_credits(2)
    (batch,) = engine.plan().batches
    engine.cut_off(batch)
    assert engine.in_flight == 0 and engine.frontier.queued() == 0
    records = engine.take_records()
    assert sorted(r["url"] for r in records["http://a.test"]) == [
        "http://a.test/1",
        "http://a.test/2",
    ]
    assert {(r["error"], r["attempts"], r["status"]) for r in records["http://a.test"]} == {
        ("cancelled", 0, None)
    }
    assert engine.stats.totals.failures == 2 and engine.stats.totals.requests == 0
    assert not engine.has_records()


def test_credits_are_asked_for_when_low_and_given_back_when_idle() -> None:
    clock = Clock()
    engine = _engine(clock, batch_size=10, concurrency_per_host=2)
    _seed(engine, *(f"http://a.test/{i}" for i in range(100)))
    ask = engine.ask_credits(idle=False)
    assert ask.wants == 100 and ask.returned == 0
    engine.add_credits(200)
    assert engine.ask_credits(idle=False).wants == 0, "not low"
    engine.frontier.pop("http://a.test", 100)
    ask = engine.ask_credits(idle=True)
    assert ask.returned == 200 and engine.credits == 0


def test_continue_as_new_carries_every_kind_of_state() -> None:
    clock = Clock()
    engine = _engine(clock, obey_robots_txt=True, delay_seconds=5.0, retry={"max_attempts": 3})
    _seed(engine, "http://a.test/", "http://b.test/")
    engine.add_credits(10)
    (targets,) = engine.plan().robots
    engine.robots_landed(targets, [RobotsResult() for _ in targets])
    (batch,) = engine.plan().batches
    tasks = [t for p in batch for t in p.tasks]
    outcomes = [
        FetchOutcome(url=t.url, task=i, status=500 if "a.test" in t.url else 200)
        for i, t in enumerate(tasks)
    ]
    links = [Link(url="http://b.test/next", depth=1)]
    engine.landed(batch, BatchResult(batch_id="b", outcomes=outcomes, links=links, items_written=1))

    restored = _engine(clock, obey_robots_txt=True, delay_seconds=5.0, retry={"max_attempts": 3})
    restored.frontier.restore_seen(engine.frontier.seen_bytes())
    for kind in STATE_KINDS:
        restored.restore(kind, list(engine.export(kind)))
    restored.restore_resting(engine.resting())
    restored.credits = engine.credits
    restored.look_at_everything()

    assert restored.frontier.queued() == engine.frontier.queued() == 1
    assert len(restored.retries) == 1
    assert restored.stats.hosts == engine.stats.hosts
    assert restored.frontier.offer(UrlTask(url="http://b.test/")) is False, "seen-set carried"
    assert restored.plan().batches == [] and restored.plan().robots == [], "resting, robots known"
    clock.now += 60
    plan = restored.plan()
    assert plan.robots == [], "robots.txt is not asked for again"
    assert sorted(u for b in plan.batches for u in _urls(b)) == [
        "http://a.test/",
        "http://b.test/next",
    ]


def test_a_parked_host_is_probed_with_one_url_then_given_up_on() -> None:
    clock = Clock()
    blocks = {"park_min_responses": 2, "park_seconds": 10, "give_up_after_parks": 2}
    engine = _engine(clock, blocks=blocks)
    _seed(engine, *(f"http://a.test/{i}" for i in range(6)))
    engine.add_credits(10)

    def blocked(batch: list[HostSlice]) -> BatchResult:
        tasks = [t for p in batch for t in p.tasks]
        outcomes = [
            FetchOutcome(url=t.url, task=i, status=403, blocked="status")
            for i, t in enumerate(tasks)
        ]
        return BatchResult(batch_id="b", outcomes=outcomes, links=[], items_written=0)

    (batch,) = engine.plan().batches
    engine.landed(batch, blocked(batch))
    assert engine.pressure.parked() == ["a.test"]
    assert engine.plan().batches == []
    clock.now += 10
    (probe,) = engine.plan().batches
    assert len(_urls(probe)) == 1 and probe[0].allotment.slots == 1
    engine.landed(probe, blocked(probe))
    engine.plan()
    assert engine.pressure.abandoned() == ["a.test"] and engine.pressure.parked() == []
    assert (engine.totals().parked_hosts, engine.totals().abandoned_hosts) == (0, 1)
    assert engine.frontier.queued() == 0 and not engine.retries
    assert engine.stats.totals.failures >= 1
    ended = engine.take_records()["http://a.test"]
    assert ended and {r["error"] for r in ended} == {"host_abandoned"}


def test_url_rules_filter_discovered_urls_and_count_by_rule() -> None:
    clock = Clock()
    engine = _engine(clock, include=[r"/blog/"], exclude=[r"\?print=", r"/blog/drafts/"])
    for url in (
        "http://a.test/blog/1",
        "http://a.test/blog/1?print=1",
        "http://a.test/blog/drafts/2",
        "http://a.test/about",
    ):
        engine.route(UrlTask(url=url, depth=1))
    assert engine.frontier.queued() == 1
    assert engine.stats.totals.filtered_by_rule == {"exclude[0]": 1, "exclude[1]": 1, "include": 1}
    _seed(engine, "http://a.test/")
    assert engine.frontier.queued() == 2, "a seed is the user's own choice: rules do not apply"


def test_a_host_quota_is_exact_and_its_other_urls_are_counted_over_quota() -> None:
    clock = Clock()
    engine = _engine(clock, max_pages_per_host=3, batch_size=2)
    _seed(engine, *(f"http://a.test/{i}" for i in range(5)))
    engine.add_credits(100)
    (first,) = engine.plan().batches
    assert len(_urls(first)) == 2
    engine.landed(first, _ok(first, {_urls(first)[0]: ["http://a.test/5"]}))
    (second,) = engine.plan().batches
    assert len(_urls(second)) == 1, "one left of the host's quota"
    engine.landed(second, _ok(second))
    engine.accept(UrlTask(url="http://a.test/6", depth=1), is_link=True)
    engine.accept(UrlTask(url="http://a.test/6", depth=1), is_link=True)
    assert engine.plan().batches == []
    assert engine.stats.hosts["a.test"].first_requests == 3
    assert engine.stats.hosts["a.test"].at_quota
    assert engine.stats.totals.over_quota == 4, "three queued left behind, /6 once"
    assert engine.frontier.queued() == 0 and engine.idle()


def test_depth_first_and_priority_orders_within_a_host() -> None:
    def order_of(order: str) -> list[str]:
        engine = _engine(Clock(), order=order, batch_size=1)
        for url, depth, priority in (
            ("http://a.test/d1-first", 1, 0),
            ("http://a.test/d2", 2, 0),
            ("http://a.test/d1-urgent", 1, 5),
            ("http://a.test/d1-last", 1, 0),
        ):
            engine.accept(UrlTask(url=url, depth=depth, priority=priority), is_link=False)
        return [t.url for t in engine.frontier.pop("http://a.test", 10)]

    assert order_of("breadth_first") == [
        "http://a.test/d1-urgent",
        "http://a.test/d1-first",
        "http://a.test/d1-last",
        "http://a.test/d2",
    ]
    assert order_of("depth_first") == [
        "http://a.test/d2",
        "http://a.test/d1-urgent",
        "http://a.test/d1-last",
        "http://a.test/d1-first",
    ]
    assert order_of("priority") == [
        "http://a.test/d1-urgent",
        "http://a.test/d1-first",
        "http://a.test/d1-last",
        "http://a.test/d2",
    ]
