"""How long the shard's activities may run: arithmetic on their inputs, kept out of the workflow."""

from __future__ import annotations

from datetime import timedelta

from shardcrawl.models import BatchRequest, FetchOptions

__all__ = ["SEGMENT_TIMEOUT", "STORE_CALL_SECONDS", "batch_timeout", "documents_timeout"]

# One store call may take boto3's four attempts at its 5 s connect and 30 s read timeouts.
STORE_CALL_SECONDS = 180
SEGMENT_TIMEOUT = timedelta(seconds=STORE_CALL_SECONDS)


def batch_timeout(request: BatchRequest, fetch: FetchOptions) -> timedelta:
    """Long enough for every URL of the slowest host to time out one after another within
    its allotment (hosts fetch side by side), and for a few slow store calls. (A store that is
    down fails its first call, so the items files of many origins need no call's worst case
    each; a worker that dies is noticed by its heartbeat, not by this.)"""
    timeout = fetch.download_timeout_seconds
    fetching = max(
        (timeout + part.delay_seconds) * part.count / part.concurrency for part in request.slices
    )
    store_calls = min(len(request.slices), 3)
    return timedelta(seconds=60 + STORE_CALL_SECONDS * store_calls + fetching)


def documents_timeout(fetch: FetchOptions, store_calls: int) -> timedelta:
    """A fetch_robots or fetch_sitemaps activity: every document side by side, redirects
    included, then a few slow store calls (as for a batch)."""
    fetching = 6 * fetch.download_timeout_seconds
    return timedelta(seconds=60 + fetching + STORE_CALL_SECONDS * store_calls)
