"""ShardStats: what one shard counts per outcome, link and batch, before any report folds it."""

from __future__ import annotations

import pytest

from shardcrawl.models import FetchOutcome
from shardcrawl.policy.shard_stats import ShardStats
from tests.report_samples import A, failed, page, shard_one, shard_zero


def test_shard_stats_counts_pages_and_requests_per_host() -> None:
    host = shard_zero().hosts["a.example"]
    assert host.pages == 4
    assert host.requests == 5
    assert host.status_counts == {"200": 2, "404": 1, "403": 1}


def test_shard_stats_robots_disallowed_is_not_a_request_or_failure() -> None:
    stats = ShardStats()
    stats.record_outcome(failed(f"{A}/secret", "robots_disallowed"))
    host = stats.hosts["a.example"]
    assert (host.requests, host.failures, host.pages, host.robots_disallowed) == (0, 0, 0, 1)
    assert (stats.totals.requests, stats.totals.failures, stats.totals.robots_disallowed) == (
        0,
        0,
        1,
    )
    assert host.failure_classes == {}


def test_shard_stats_forbidden_address_is_a_failure_but_not_a_request() -> None:
    stats = ShardStats()
    stats.record_outcome(failed(f"{A}/x", "forbidden_address"))
    host = stats.hosts["a.example"]
    assert (host.requests, host.failures) == (0, 1)
    assert host.failure_classes == {"forbidden_address": 1}


def test_shard_stats_network_error_is_a_request_and_a_failure() -> None:
    stats = ShardStats()
    stats.record_outcome(failed(f"{A}/x", "connection_refused"))
    assert (stats.totals.requests, stats.totals.failures, stats.totals.pages) == (1, 1, 0)
    assert stats.hosts["a.example"].failure_classes == {"connection_refused": 1}


@pytest.mark.parametrize(("status", "blocked"), [(200, 0), (404, 0), (403, 1), (429, 1), (500, 0)])
def test_shard_stats_403_and_429_count_as_blocked(status: int, blocked: int) -> None:
    stats = ShardStats()
    stats.record_outcome(page(f"{A}/x", status))
    assert stats.totals.blocked == blocked
    assert stats.hosts["a.example"].blocked == blocked
    assert stats.totals.pages == 1


def test_shard_stats_links_and_duplicates() -> None:
    stats = shard_zero()
    assert stats.totals.links_discovered == 3
    assert stats.totals.duplicates == 2
    assert stats.hosts["a.example"].duplicates == 2


def test_shard_stats_batch_retries_are_extra_attempts() -> None:
    stats = shard_zero()
    assert stats.totals.batches == 2
    assert stats.totals.batch_retries == 2
    assert stats.hosts["a.example"].batch_retries == 2


def test_shard_stats_hosts_keyed_by_host_name_without_port() -> None:
    stats = shard_one()
    assert set(stats.hosts) == {"b.example", "c.example"}
    assert stats.totals.hosts == 2


def test_hosts_count_where_they_are_fetched_not_where_links_to_them_are_seen() -> None:
    stats = ShardStats()
    stats.record_link("http://elsewhere.example/x", duplicate=True)
    assert stats.totals.hosts == 0
    stats.record_outcome(FetchOutcome(url="http://mine.example/a", status=200))
    stats.record_outcome(FetchOutcome(url="http://mine.example/b", error="robots_disallowed"))
    stats.record_outcome(FetchOutcome(url="http://mine.example/c", status=404))
    stats.record_outcome(FetchOutcome(url="http://meta.example/", error="forbidden_address"))
    stats.record_outcome(FetchOutcome(url="http://meta.example/x", error="forbidden_address"))
    assert stats.totals.hosts == 2
