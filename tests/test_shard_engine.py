"""The shard's decisions without Temporal: ``ShardEngine`` with a test clock and random source.

Dispatch, robots.txt, credits, retries, rests, holds, links for other shards, a cancel, and
a continue-as-new's export and restore, each driven the way the workflow drives it: plan,
then hand each planned batch a result.
"""

from __future__ import annotations

import random

import pytest

from shardcrawl.core import urls
from shardcrawl.models import (
    SITEMAP_META,
    BatchResult,
    CrawlSpec,
    FetchOutcome,
    Link,
    RobotsResult,
    SitemapResult,
    UrlTask,
)
from shardcrawl.policy.batch_cutter import HostSlice
from shardcrawl.policy.shard_engine import (
    MAX_BATCHES_IN_FLIGHT,
    MAX_RETRY_BATCHES,
    STATE_KINDS,
    ShardEngine,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _engine(clock: Clock, *, shard_count: int = 1, **spec: object) -> ShardEngine:
    fields = {
        "seeds": ["http://a.test/"],
        "allowed_domains": ["test"],
        "obey_robots_txt": False,
        **spec,
    }
    return ShardEngine(
        CrawlSpec.model_validate(fields),
        shard=0,
        shard_count=shard_count,
        clock=clock,
        random=random.Random(7).random,
    )


def _seed(engine: ShardEngine, *url_list: str) -> None:
    for url in url_list:
        engine.accept(UrlTask(url=url), is_link=False)


def _ok(batch: list[HostSlice], links: dict[str, list[str]] | None = None) -> BatchResult:
    """Every request of the batch answered 200; ``links`` maps a URL to what its page links."""
    tasks = [t for part in batch for t in part.tasks]
    found = [
        Link(url=link, depth=t.depth + 1) for t in tasks for link in (links or {}).get(t.url, [])
    ]
    outcomes = [FetchOutcome(url=t.url, task=i, status=200) for i, t in enumerate(tasks)]
    return BatchResult(batch_id="b", outcomes=outcomes, links=found, items_written=len(tasks))


def _urls(batch: list[HostSlice]) -> list[str]:
    return [t.url for part in batch for t in part.tasks]


def test_one_batch_spans_the_ready_hosts_each_with_its_own_lease() -> None:
    clock = Clock()
    engine = _engine(clock, concurrency_per_host=3, batch_size=50)
    _seed(engine, "http://a.test/", "http://b.test/", "http://b.test/2", "http://c.test/")
    engine.add_credits(100)
    plan = engine.plan()
    assert len(plan.batches) == 1 and not plan.robots
    (batch,) = plan.batches
    assert sorted(p.origin for p in batch) == ["http://a.test", "http://b.test", "http://c.test"]
    assert {p.lease.slots for p in batch} == {3}
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
    assert record.budget.batches == 1 and record.budget.in_use == batch[0].lease.slots
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
    assert not part.lease.retry, "it rides in the host's batch of new work"
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
    assert part.lease.retry and part.lease.slots == 2, "20% of 10 slots"
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
    assert len(_urls(probe)) == 1 and probe[0].lease.slots == 1
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


def _sitemap_records(*entries: tuple[str, str]) -> list[list[object]]:
    return [[kind, url, None, None, None] for kind, url in entries]


def test_sitemaps_named_by_robots_are_read_and_what_they_list_is_queued() -> None:
    clock = Clock()
    engine = _engine(clock, obey_robots_txt=True)
    _seed(engine, "http://a.test/")
    engine.add_credits(10)
    (targets,) = engine.plan().robots
    engine.robots_landed(targets, [RobotsResult(sitemaps=["http://a.test/index.xml"])])
    plan = engine.plan()
    (sitemaps,) = plan.sitemaps
    assert [t.url for t in sitemaps] == ["http://a.test/index.xml"]
    assert not engine.idle(), "a sitemap is being read"
    listed = [
        ["s", "http://a.test/child.xml", None, None, None],
        ["u", "http://a.test/orphan", "2026-11-30", "daily", 0.9],
        ["u", "http://elsewhere.example/x", None, None, None],
    ]
    engine.sitemap_entries(sitemaps[0], listed)
    engine.sitemaps_landed(sitemaps, [SitemapResult(status=200, pages=2, children=1)])
    assert engine.frontier.queued_at("http://a.test") == 1
    (orphan,) = engine.frontier.pop("http://a.test", 1)
    assert orphan.depth == 0 and orphan.priority == 4
    assert orphan.request is not None
    assert orphan.request.meta[SITEMAP_META] == {
        "lastmod": "2026-11-30",
        "changefreq": "daily",
        "priority": 0.9,
    }
    assert engine.stats.totals.out_of_scope == 1
    (child,) = engine.plan().sitemaps
    assert child[0].nesting == 1
    loop = _sitemap_records(("s", "http://a.test/index.xml"), ("s", "http://a.test/child.xml"))
    engine.sitemap_entries(child[0], loop)
    engine.sitemaps_landed(child, [SitemapResult(status=200, error="malformed")])
    totals = engine.stats.totals
    assert engine.plan().sitemaps == [], "each sitemap is read once"
    assert totals.sitemap_errors == {"loop": 2, "malformed": 1}
    assert totals.sitemaps_fetched == 2 and totals.sitemap_urls == 2


def test_a_sitemap_that_fails_for_now_is_retried_after_a_backoff() -> None:
    clock = Clock()
    engine = _engine(clock, retry={"max_attempts": 2})
    engine.add_seed(UrlTask(url="http://a.test/sitemap.xml"))
    assert engine.frontier.queued() == 0, "a seed that is a sitemap is read, not fetched"
    (targets,) = engine.plan().sitemaps
    engine.sitemaps_landed(targets, [SitemapResult(error="connection_refused")])
    assert engine.plan().sitemaps == [] and not engine.idle()
    wait = engine.next_wake()
    assert wait is not None and wait > 0
    clock.now += wait
    (again,) = engine.plan().sitemaps
    assert again[0].attempt == 2
    engine.sitemaps_landed(again, [SitemapResult(status=503, error="http_503")])
    assert engine.stats.totals.sitemap_errors == {"http_503": 1} and engine.idle()


def test_sitemaps_only_fetches_what_sitemaps_list_and_follows_no_links() -> None:
    clock = Clock()
    engine = _engine(clock, sitemaps="only")
    engine.add_seed(UrlTask(url="http://a.test/"))
    engine.add_seed(UrlTask(url="http://a.test/feed.rss"))
    assert engine.frontier.queued() == 0, "a page seed only names its host"
    (targets,) = engine.plan().sitemaps
    engine.sitemap_entries(targets[0], _sitemap_records(("u", "http://a.test/p")))
    engine.sitemaps_landed(targets, [SitemapResult(status=200, pages=1)])
    engine.add_credits(5)
    (batch,) = engine.plan().batches
    engine.landed(batch, _ok(batch, {"http://a.test/p": ["http://a.test/linked"]}))
    assert engine.frontier.queued() == 0 and engine.idle()


def test_continue_as_new_carries_sitemaps_waiting_and_read() -> None:
    clock = Clock()
    engine = _engine(clock)
    engine.add_seed(UrlTask(url="http://a.test/sitemap.xml"))
    engine.add_seed(UrlTask(url="http://a.test/other-sitemap.xml"))
    (targets,) = engine.plan().sitemaps
    assert len(targets) == 1, "one per host per activity"
    engine.sitemaps_landed(targets, [SitemapResult(status=200)])
    restored = _engine(clock)
    restored.restore("sitemaps", list(engine.export("sitemaps")))
    (waiting,) = restored.plan().sitemaps
    assert [t.url for t in waiting] == ["http://a.test/other-sitemap.xml"]
    restored.add_seed(UrlTask(url=targets[0].url))
    assert restored.plan().sitemaps == [], "read already, in the run before"


def test_an_incremental_crawl_reads_a_hosts_sitemaps_before_its_pages() -> None:
    clock = Clock()
    engine = ShardEngine(
        CrawlSpec.model_validate({"seeds": ["http://a.test/"], "allowed_domains": ["test"]}),
        shard=0,
        shard_count=1,
        clock=clock,
        random=random.Random(7).random,
        incremental=True,
    )
    engine.route(UrlTask(url="http://a.test/old"), is_link=False)  # the previous crawl's
    engine.add_credits(10)
    (targets,) = engine.plan().robots
    engine.robots_landed(targets, [RobotsResult(sitemaps=["http://a.test/sitemap.xml"])])
    plan = engine.plan()
    assert plan.batches == [], "the host's pages wait for its sitemap"
    (sitemaps,) = plan.sitemaps
    engine.sitemap_entries(sitemaps[0], [["u", "http://a.test/old", "2026-01-01", None, None]])
    engine.sitemaps_landed(sitemaps, [SitemapResult(status=200, pages=1)])
    (batch,) = engine.plan().batches
    (part,) = batch
    (task,) = part.tasks
    assert task.url == "http://a.test/old" and task.request is not None
    assert task.request.meta[SITEMAP_META] == {"lastmod": "2026-01-01"}


def test_with_ten_thousand_hosts_a_pass_looks_at_what_changed() -> None:
    """After the first pass, a batch that lands makes the next pass look at its own hosts
    and nothing else, however many hosts the shard owns; the counters need no scan either."""
    clock = Clock()
    engine = _engine(clock, batch_size=200, concurrency_per_host=1)
    _seed(engine, *(f"http://h{i}.test/" for i in range(10_000)))
    engine.add_credits(100_000)
    looked_at: list[str] = []
    order_key = engine.frontier.order_key

    def counting(origin: str) -> tuple[int, int, int] | None:
        looked_at.append(origin)
        return order_key(origin)

    engine.frontier.order_key = counting  # type: ignore[method-assign]
    first = engine.plan().batches
    assert len(first) == 50 and len(looked_at) == 10_000
    looked_at.clear()
    engine.landed(
        first[0], _ok(first[0], {t.url: [f"{t.url}2"] for p in first[0] for t in p.tasks})
    )
    clock.now += 1
    (second,) = engine.plan().batches
    landed = {p.origin for p in first[0]}
    assert set(looked_at) == landed and len(looked_at) == len(landed) == 200
    assert {p.origin for p in second} == landed, "each host's second page, nothing else"


def test_batches_in_flight_stay_within_the_shards_limit() -> None:
    clock = Clock()
    engine = _engine(clock, batch_size=10)
    _seed(engine, *(f"http://h{i}.test/" for i in range(MAX_BATCHES_IN_FLIGHT * 10 + 5)))
    engine.add_credits(100_000)
    assert len(engine.plan().batches) == engine.in_flight == MAX_BATCHES_IN_FLIGHT
    assert engine.plan().batches == []


# -- fleets (fetch_queue) --------------------------------------------------------------------

EU_ROUTES = {
    "routes": [
        {"domains": ["a.test", "b.test"], "mode": "direct", "fetch_queue": "eu"},
        {"domains": ["d.test"], "mode": "direct", "fetch_queue": "default"},
    ]
}


def test_batches_robots_and_sitemaps_never_mix_fleets() -> None:
    clock = Clock()
    engine = _engine(clock, obey_robots_txt=True, batch_size=50, proxies=EU_ROUTES)
    _seed(engine, "http://a.test/", "http://b.test/", "http://c.test/", "http://d.test/")
    engine.add_credits(100)
    plan = engine.plan()
    fleets_of = {
        engine.fetch_queue(targets[0].origin): {t.origin for t in targets}
        for targets in plan.robots
    }
    assert fleets_of == {
        "eu": {"http://a.test", "http://b.test"},
        None: {"http://c.test", "http://d.test"},
    }
    assert engine.fleet_load() == {"eu": 1}
    for targets in plan.robots:
        sitemap = [RobotsResult(sitemaps=[f"{t.origin}/sitemap.xml"]) for t in targets]
        engine.robots_landed(targets, sitemap)
    assert engine.fleet_load() == {"eu": 0}
    plan = engine.plan()
    batches = {engine.fetch_queue(b[0].origin): sorted(p.origin for p in b) for b in plan.batches}
    assert batches == {
        "eu": ["http://a.test", "http://b.test"],
        None: ["http://c.test", "http://d.test"],
    }
    sitemaps = {
        engine.fetch_queue(targets[0].url): sorted(t.url for t in targets)
        for targets in plan.sitemaps
    }
    assert sitemaps == {
        "eu": ["http://a.test/sitemap.xml", "http://b.test/sitemap.xml"],
        None: ["http://c.test/sitemap.xml", "http://d.test/sitemap.xml"],
    }
    assert engine.fleet_load() == {"eu": 2}
    for batch in plan.batches:
        engine.landed(batch, _ok(batch))
    for targets in plan.sitemaps:
        engine.sitemaps_landed(targets, [SitemapResult(status=404) for _ in targets])
    assert engine.fleet_load() == {"eu": 0} and engine.idle()


def test_a_fleet_with_no_worker_holds_only_its_share_of_the_batch_slots() -> None:
    """Batches waiting for eu workers that never come leave the main queue's hosts slots."""
    clock = Clock()
    routes = {"routes": [{"domains": ["eu.test"], "mode": "direct", "fetch_queue": "eu"}]}
    engine = _engine(clock, batch_size=1, proxies=routes, allowed_domains=["test"])
    _seed(engine, *(f"http://h{i}.eu.test/" for i in range(MAX_BATCHES_IN_FLIGHT)))
    _seed(engine, "http://home.test/")
    engine.add_credits(1000)
    plan = engine.plan()
    eu = [b for b in plan.batches if engine.fetch_queue(b[0].origin) == "eu"]
    home = [b for b in plan.batches if engine.fetch_queue(b[0].origin) is None]
    assert len(eu) == MAX_BATCHES_IN_FLIGHT // 2 == engine.fleet_load()["eu"]
    assert [b[0].origin for b in home] == ["http://home.test"]
    assert not engine.plan().batches  # eu is full, home's host is busy
    engine.landed(eu[0], _ok(eu[0]))
    (more,) = engine.plan().batches  # a slot of eu came free: a waiting eu host takes it
    assert engine.fetch_queue(more[0].origin) == "eu" and more[0].origin not in {
        b[0].origin for b in eu
    }


class _CountingDict(dict):  # type: ignore[type-arg]
    """A per-host map that counts walks over it (a lookup is no walk)."""

    walks = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        _CountingDict.walks += 1
        return super().__iter__()

    def keys(self):  # type: ignore[no-untyped-def]
        _CountingDict.walks += 1
        return super().keys()

    def values(self):  # type: ignore[no-untyped-def]
        _CountingDict.walks += 1
        return super().values()

    def items(self):  # type: ignore[no-untyped-def]
        _CountingDict.walks += 1
        return super().items()


class _CountingSet(set):  # type: ignore[type-arg]
    walks = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        _CountingSet.walks += 1
        return super().__iter__()


def test_an_activation_walks_no_per_host_map_with_10000_hosts() -> None:
    """Issue 11: work per activation grows with what changed, not with the hosts a shard
    owns. 10,000 hosts (each allowed by name, as a broad crawl's seeds imply) that have all
    had a batch; then one batch lands with links to other hosts, and the shard plans,
    reports and sleeps, as the workflow does after every landing: no map kept per host or
    per origin, and not the allowed domains, may be walked."""
    clock = Clock()
    hosts = [f"h{i}.test" for i in range(10_000)]
    engine = _engine(clock, allowed_domains=hosts, batch_size=2000, concurrency_per_host=1)
    _seed(engine, *(f"http://{h}/" for h in hosts))
    engine.add_credits(30_000)
    batches = engine.plan().batches
    assert sum(len(b) for b in batches) == len(hosts)
    *first, last = batches
    for batch in first:
        engine.landed(batch, _ok(batch, {t.url: [t.url + "next"] for p in batch for t in p.tasks}))
    engine.plan()

    engine.hosts._hosts = _CountingDict(engine.hosts._hosts)
    engine.hosts._by_origin = _CountingDict(engine.hosts._by_origin)
    engine.frontier._queues = _CountingDict(engine.frontier._queues)
    engine.frontier._counts = _CountingDict(engine.frontier._counts)
    engine._domains._names = _CountingSet(engine._domains._names)
    page = last[0].tasks[0].url
    links = {page: [f"http://{hosts[i]}/more" for i in range(0, 10_000, 97)]}
    engine.landed(last, _ok(last, links))
    plan = engine.plan()
    assert plan.batches, "the hosts of the batch that landed go again"
    engine.totals()
    list(engine.levels())
    engine.next_wake()
    engine.ask_credits(idle=engine.idle())
    assert (_CountingDict.walks, _CountingSet.walks) == (0, 0)
