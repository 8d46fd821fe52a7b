"""The crawl report that build_report folds from the shards' counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shardcrawl.core.layout import shown_location
from shardcrawl.models import CrawlReport, HostStats, ShardTotals
from shardcrawl.policy.report import (
    MAX_FIELDS,
    ShardPart,
    build_report,
    merge_hosts,
    sum_totals,
    top_urls_retry_share,
    trim_hosts,
)
from shardcrawl.policy.shard_stats import ShardStats
from tests.report_samples import A, B, C, failed, page, shard_one, shard_zero

STARTED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
FINISHED = STARTED + timedelta(seconds=14)


def result(shard: int, stats: ShardStats, unfetched: int = 0) -> ShardPart:
    return ShardPart(totals=stats.totals, hosts=stats.hosts, unfetched=unfetched)


def report(results: list[ShardPart], finished: datetime = FINISHED) -> CrawlReport:
    return build_report(
        crawl_id="crawl-x",
        status="completed",
        output="out",
        started_at=STARTED,
        finished_at=finished,
        results=results,
    )


@pytest.fixture
def crawl_report() -> CrawlReport:
    return report([result(0, shard_zero(), unfetched=3), result(1, shard_one(), unfetched=2)])


# -- build_report --------------------------------------------------------------------------------


def test_report_pages_and_requests(crawl_report: CrawlReport) -> None:
    assert crawl_report.pages_fetched == 7
    assert crawl_report.requests == 10


def test_report_does_not_count_robots_disallowed_as_request(crawl_report: CrawlReport) -> None:
    assert crawl_report.robots_disallowed == 1
    assert crawl_report.requests == 10
    assert "robots_disallowed" not in crawl_report.failure_classes


def test_report_failures_and_failure_classes(crawl_report: CrawlReport) -> None:
    assert crawl_report.failures == 4
    assert crawl_report.failure_classes == {
        "connection_refused": 1,
        "dns": 1,
        "forbidden_address": 1,
        "timeout": 1,
    }
    assert list(crawl_report.failure_classes) == sorted(crawl_report.failure_classes)


def test_report_status_counts(crawl_report: CrawlReport) -> None:
    assert crawl_report.status_counts == {"200": 4, "403": 1, "404": 1, "429": 1}


def test_report_blocked_and_block_rate(crawl_report: CrawlReport) -> None:
    assert crawl_report.blocked == 2
    assert crawl_report.block_rate == pytest.approx(0.2)


def test_report_duplicate_rate(crawl_report: CrawlReport) -> None:
    assert crawl_report.links_discovered == 6
    assert crawl_report.duplicates_skipped == 3
    assert crawl_report.duplicate_rate == pytest.approx(0.5)


def test_report_per_host_stats(crawl_report: CrawlReport) -> None:
    assert list(crawl_report.hosts) == ["a.example", "b.example", "c.example"]
    a = crawl_report.hosts["a.example"]
    assert (a.requests, a.pages, a.failures, a.blocked, a.robots_disallowed) == (5, 4, 2, 1, 1)
    b = crawl_report.hosts["b.example"]
    assert (b.requests, b.pages, b.failures, b.blocked) == (4, 2, 2, 1)
    assert b.failure_classes == {"timeout": 1, "dns": 1}
    assert crawl_report.hosts["c.example"].status_counts == {"200": 1}


def test_report_batch_retries_are_not_url_retries(crawl_report: CrawlReport) -> None:
    assert crawl_report.batch_retries == 3
    assert crawl_report.retries == 0
    assert crawl_report.retry_concentration == 0.0


def retried(url: str, status: int, attempt: int, *, final: bool, stats: ShardStats) -> None:
    outcome = page(url, status).model_copy(update={"attempt": attempt})
    stats.record_outcome(outcome, final=final)


def test_report_counts_url_retries_rate_and_concentration() -> None:
    stats = ShardStats()
    # a.example/1: 503, 503, 200 (two retries); b.example/1: 503 then 200; c.example/1: 200.
    retried(f"{A}/1", 503, 1, final=False, stats=stats)
    retried(f"{A}/1", 503, 2, final=False, stats=stats)
    retried(f"{A}/1", 200, 3, final=True, stats=stats)
    retried(f"{B}/1", 503, 1, final=False, stats=stats)
    retried(f"{B}/1", 200, 2, final=True, stats=stats)
    retried(f"{C}/1", 200, 1, final=True, stats=stats)
    r = report([result(0, stats)])
    assert (r.requests, r.pages_fetched, r.retries) == (6, 3, 3)
    assert r.retry_rate == pytest.approx(3 / 6)
    assert r.retry_concentration == pytest.approx(2 / 3, abs=1e-6)
    # The top 1% of 3 URLs is one URL: a.example/1, with 2 of the 3 retries.
    assert r.retry_concentration_top_urls == pytest.approx(2 / 3, abs=1e-6)
    assert r.status_counts == {"200": 3}, "a retried attempt is not a URL's status"
    assert r.hosts["a.example"].retries == 2 and r.hosts["b.example"].retries == 1


def test_a_url_that_ends_retryable_counts_as_given_up() -> None:
    stats = ShardStats()
    retried(f"{A}/1", 503, 1, final=False, stats=stats)
    retried(f"{A}/1", 503, 2, final=True, stats=stats)
    r = report([result(0, stats)])
    assert (r.gave_up, r.retries, r.pages_fetched) == (1, 1, 1)
    assert r.status_counts == {"503": 1}


def test_top_urls_retry_share_takes_the_most_retried_first() -> None:
    # 200 URLs ended: 1 with 5 retries, 3 with 1; the top 1% is 2 URLs: 5 + 1 of 8.
    assert top_urls_retry_share({"5": 1, "1": 3}, 200) == pytest.approx(6 / 8)
    assert top_urls_retry_share({}, 10) == 0.0


def test_report_pages_per_second_uses_elapsed_time(crawl_report: CrawlReport) -> None:
    assert crawl_report.elapsed_seconds == pytest.approx(14.0)
    assert crawl_report.pages_per_second == pytest.approx(0.5)


def test_report_sums_scope_depth_and_unfetched(crawl_report: CrawlReport) -> None:
    assert crawl_report.out_of_scope == 6
    assert crawl_report.too_deep == 1
    assert crawl_report.unfetched == 5


def test_report_carries_identity(crawl_report: CrawlReport) -> None:
    assert crawl_report.crawl_id == "crawl-x"
    assert crawl_report.status == "completed"
    assert crawl_report.started_at == STARTED
    assert crawl_report.finished_at == FINISHED


def test_report_merges_stats_of_a_host_seen_by_two_shards() -> None:
    first = ShardStats()
    first.record_outcome(page(f"{A}/1", 200))
    first.record_outcome(failed(f"{A}/2", "timeout"))
    first.record_batch(attempt=2, origins=[A])
    second = ShardStats()
    second.record_outcome(page(f"{A}/3", 403))
    second.record_link(f"{A}/4", duplicate=True)
    second.record_batch(attempt=3, origins=[A])
    second.record_outcome(page(f"{B}/1", 200))
    second.record_batch(attempt=2, origins=[B])

    merged = report([result(0, first), result(1, second)])

    a = merged.hosts["a.example"]
    assert (a.requests, a.pages, a.failures, a.blocked) == (3, 2, 1, 1)
    assert a.status_counts == {"200": 1, "403": 1}
    assert a.failure_classes == {"timeout": 1}
    assert (a.links_discovered, a.duplicates) == (1, 1)
    assert a.batch_retries == 3
    # Per-host numbers add up to the crawl-wide ones.
    assert sum(h.requests for h in merged.hosts.values()) == merged.requests


def test_report_retry_concentration_zero_without_retries() -> None:
    stats = ShardStats()
    stats.record_outcome(page(f"{A}/1", 200))
    stats.record_batch(attempt=1, origins=[A])
    r = report([result(0, stats)])
    assert r.batch_retries == 0
    assert r.retry_concentration == 0.0


def test_report_retry_concentration_spread_evenly() -> None:
    stats = ShardStats()
    for origin in (A, B, C, "https://d.example"):
        retried(f"{origin}/1", 200, 2, final=True, stats=stats)
    assert report([result(0, stats)]).retry_concentration == pytest.approx(0.25)


def test_report_of_nothing_has_zero_rates() -> None:
    empty = report([result(0, ShardStats())])
    assert (empty.pages_fetched, empty.requests) == (0, 0)
    assert empty.block_rate == 0.0
    assert empty.duplicate_rate == 0.0
    assert empty.retry_concentration == 0.0
    assert empty.pages_per_second == 0.0
    assert empty.hosts == {}


def test_sum_totals_adds_every_counter_and_keeps_the_largest_run_size() -> None:
    counters = [n for n, f in ShardTotals.model_fields.items() if f.annotation is int]
    one = ShardTotals(
        **{name: 1 for name in counters},
        retry_histogram={"1": 1},
        filtered_by_rule={"include": 1},
    )
    two = ShardTotals(
        **{name: 2 for name in counters},
        retry_histogram={"1": 2, "3": 1},
        filtered_by_rule={"include": 2, "exclude[0]": 1},
    )
    total = sum_totals([one, two])
    assert set(counters) >= MAX_FIELDS
    store_fields = {"store_down_since", "store_down_cause"}
    dicts = {"retry_histogram", "recent_pages", "filtered_by_rule", "sitemap_errors"}
    dicts |= {"spider_errors"}
    assert set(counters) | dicts | store_fields == set(ShardTotals.model_fields)
    for name in counters:
        assert getattr(total, name) == (2 if name in MAX_FIELDS else 3), name
    assert total.retry_histogram == {"1": 3, "3": 1}
    assert total.filtered_by_rule == {"include": 3, "exclude[0]": 1}


def test_sum_totals_shows_the_earliest_store_outage_of_any_shard() -> None:
    up = ShardTotals(pages=1)
    later = ShardTotals(store_down_since=200.0, store_down_cause="refused, later")
    first = ShardTotals(store_down_since=100.0, store_down_cause="refused")
    total = sum_totals([up, later, first])
    assert (total.store_down_since, total.store_down_cause) == (100.0, "refused")
    assert sum_totals([up, up]).store_down_since == 0.0


def test_trim_hosts_keeps_the_busiest_and_counts_the_rest(crawl_report: CrawlReport) -> None:
    assert trim_hosts(crawl_report, keep=len(crawl_report.hosts)) is crawl_report
    trimmed = trim_hosts(crawl_report, keep=1)
    busiest = max(crawl_report.hosts.items(), key=lambda kv: kv[1].requests)
    assert trimmed.hosts == dict([busiest])
    assert trimmed.hosts_omitted == len(crawl_report.hosts) - 1


def test_report_does_not_mutate_shard_results() -> None:
    stats = shard_zero()
    res = result(0, stats)
    before = {name: h.model_copy(deep=True) for name, h in res.hosts.items()}
    report([res, result(1, shard_one())])
    report([res, result(1, shard_one())])
    assert res.hosts == before
    assert isinstance(res.hosts["a.example"], HostStats)


@pytest.mark.parametrize("owner_first", [True, False])
def test_only_the_owner_reports_a_hosts_state(owner_first: bool) -> None:
    """A shard that only linked to a host holds a default 'ok' state for it: in whichever
    order the shards merge, the owner's parked or abandoned state stands."""
    owner = ShardStats()
    owner.record_outcome(page(f"{A}/1", 403))
    owner.hosts["a.example"].state = "abandoned"
    owner.hosts["a.example"].parks = 3
    owner.hosts["a.example"].concurrency = 1
    linker = ShardStats()
    linker.record_link(f"{A}/2", duplicate=False)
    parts = [result(0, owner), result(1, linker)]
    merged = report(parts if owner_first else parts[::-1])
    assert merged.abandoned_hosts == ["a.example"]
    host = merged.hosts["a.example"]
    assert (host.state, host.parks, host.concurrency) == ("abandoned", 3, 1)
    assert host.links_discovered == 1 and host.requests == 1


@pytest.mark.parametrize("owner_first", [True, False])
def test_live_status_keeps_the_owners_host_state(owner_first: bool) -> None:
    """The live status folds the shards' ``hosts`` queries with ``merge_hosts``, as the report
    does: a parked host stays parked whichever shard answered last."""
    owner = ShardStats()
    owner.record_outcome(page(f"{A}/1", 403))
    owner.hosts["a.example"].state = "parked"
    linker = ShardStats()
    linker.record_link(f"{A}/2", duplicate=False)
    parts = [owner.hosts, linker.hosts]
    merged = merge_hosts(parts if owner_first else parts[::-1])
    assert merged["a.example"].state == "parked"
    assert merged["a.example"].links_discovered == 1


def test_local_outputs_show_as_paths_and_other_stores_as_urls() -> None:
    assert shown_location("file:///data/my%20crawls") == "/data/my crawls"
    assert shown_location("s3://bucket/prefix") == "s3://bucket/prefix"
