"""The shard engine's sitemaps: those robots.txt names, their retries, a sitemaps-only crawl,
their state across continue-as-new, and an incremental crawl's hosts waiting for them."""

from __future__ import annotations

import random

from shardcrawl.models import SITEMAP_META, CrawlSpec, RobotsResult, SitemapResult, UrlTask
from shardcrawl.policy.shard_engine import ShardEngine
from tests.shard_engine_helpers import Clock, _engine, _ok, _seed


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
