"""Sample shard counters and outcomes that the ShardStats tests and the report tests both fold."""

from __future__ import annotations

from shardcrawl.models import BlockSpec, FetchOutcome
from shardcrawl.policy.blocks import block_reason
from shardcrawl.policy.shard_stats import ShardStats

A = "https://a.example"
B = "https://b.example"
C = "http://c.example:8080"


def page(url: str, status: int) -> FetchOutcome:
    """As the batch activity reports it, with the default block rules."""
    return FetchOutcome(
        url=url, status=status, blocked=block_reason(status, b"", None, BlockSpec())
    )


def failed(url: str, error: str) -> FetchOutcome:
    return FetchOutcome(url=url, error=error)


def shard_zero() -> ShardStats:
    stats = ShardStats()
    for outcome in [
        page(f"{A}/1", 200),
        page(f"{A}/2", 200),
        page(f"{A}/3", 404),
        page(f"{A}/4", 403),
        failed(f"{A}/5", "connection_refused"),
        failed(f"{A}/6", "robots_disallowed"),
        failed(f"{A}/7", "forbidden_address"),
    ]:
        stats.record_outcome(outcome)
    stats.record_link(f"{A}/x", duplicate=False)
    stats.record_link(f"{A}/y", duplicate=True)
    stats.record_link(f"{A}/z", duplicate=True)
    stats.record_batch(attempt=1, origins=[A])
    stats.record_batch(attempt=3, origins=[A])
    stats.totals.out_of_scope = 4
    stats.totals.too_deep = 1
    return stats


def shard_one() -> ShardStats:
    stats = ShardStats()
    for outcome in [
        page(f"{B}/1", 200),
        page(f"{B}/2", 429),
        failed(f"{B}/3", "timeout"),
        failed(f"{B}/4", "dns"),
        page(f"{C}/1", 200),
    ]:
        stats.record_outcome(outcome)
    stats.record_link(f"{B}/q", duplicate=False)
    stats.record_link(f"{B}/r", duplicate=False)
    stats.record_link(f"{B}/q", duplicate=True)
    stats.record_batch(attempt=2, origins=[B])
    stats.record_batch(attempt=1, origins=[C])
    stats.totals.out_of_scope = 2
    return stats
