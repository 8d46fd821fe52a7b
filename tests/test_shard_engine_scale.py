"""The shard engine at scale: 10,000 hosts, the shard's limit of batches in flight, fleets
that never mix and hold only their share, and an activation that walks no per-host map."""

from __future__ import annotations

from shardcrawl.models import RobotsResult, SitemapResult
from shardcrawl.policy.shard_engine import MAX_BATCHES_IN_FLIGHT
from tests.shard_engine_helpers import Clock, _engine, _ok, _seed


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
    held = engine.release_held()  # 4 batches are still in flight: a small one waits to fill
    assert plan.batches or held.batches, "the hosts of the batch that landed go again"
    engine.totals()
    list(engine.levels())
    engine.next_wake()
    engine.ask_credits(idle=engine.idle())
    assert (_CountingDict.walks, _CountingSet.walks) == (0, 0)
