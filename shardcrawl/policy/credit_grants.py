"""How the crawl hands out page credits, so that no shard with a long queue takes them all."""

from __future__ import annotations

from shardcrawl.models import CrawlSpec, ShardStatus

__all__ = ["grant_cap", "grants"]


def grant_cap(spec: CrawlSpec, credits_left: int) -> int:
    """The most one grant gives a shard: half the pool's fair share per shard (and never
    less than a chunk), so one shard with a long queue cannot take a small max_pages
    from the others, and a large pool goes in few messages (each grant is a status and
    an enqueue, four signals' worth of work for the Temporal server)."""
    fair = credits_left // (2 * spec.shards)
    return max(spec.batch_size * max(2, spec.concurrency_per_host), fair)


def grants(
    statuses: dict[int, ShardStatus],
    *,
    spec: CrawlSpec,
    credits_left: int,
    granted_at_seq: dict[int, int],
    pending_credits: dict[int, int],
) -> dict[int, int]:
    """Page credits for each shard that asked, once it has applied the last grant and has
    none waiting to be sent, from ``credits_left`` (in shard order)."""
    given: dict[int, int] = {}
    for index, status in sorted(statuses.items()):
        if credits_left <= 0:
            break
        if status.wants_credits <= 0:
            continue
        if status.processed_seq < granted_at_seq.get(index, 0):
            continue
        if pending_credits.get(index, 0) > 0:
            continue
        # A shard asks for what it has queued and gets at most grant_cap.
        grant = min(status.wants_credits, credits_left, grant_cap(spec, credits_left))
        credits_left -= grant
        given[index] = grant
    return given
