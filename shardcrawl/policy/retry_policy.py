"""Which URL outcomes are tried again, and after how long: one pure policy that the batch
activity (to leave no record for an outcome that will be retried) and the shard (to schedule
the retry) both apply, so their decisions cannot differ.

Infrastructure failures (a lost worker, a crashed activity) are Temporal's activity retries
and never reach this policy; a batch that exhausts those is ``batch_failed``, which is final.
"""

from __future__ import annotations

from shardcrawl.models import FetchOutcome, RetrySpec

__all__ = [
    "RETRYABLE_ERRORS",
    "RETRYABLE_STATUSES",
    "attempts_allowed",
    "backoff_seconds",
    "is_retryable",
    "will_retry",
]

RETRYABLE_ERRORS = frozenset(
    {
        "connection_refused",
        "connection_lost",
        "connection_error",
        "download_failed",
        "timeout",
        "dns",
        "tunnel",  # a proxy's CONNECT refused: another proxy may carry it
        "proxy_auth",  # a proxy refused its credentials: likewise
        "proxy_error",  # a proxy's own 502/503: it could not reach the target; likewise
    }
)
RETRYABLE_STATUSES = frozenset({408, 429})
# A name that does not resolve rarely starts to on its own: one retry, then it is final.
DNS_ATTEMPTS = 2


def is_retryable(outcome: FetchOutcome) -> bool:
    """Blocks, 408, 429, 5xx and transient network errors; never other 4xx, robots.txt
    refusals, forbidden addresses, oversize bodies or TLS errors."""
    if outcome.blocked:
        return True
    if outcome.status is not None:
        return outcome.status in RETRYABLE_STATUSES or 500 <= outcome.status < 600
    return outcome.error in RETRYABLE_ERRORS


def attempts_allowed(outcome: FetchOutcome, retry: RetrySpec) -> int:
    if outcome.status is None and outcome.error == "dns":
        return min(DNS_ATTEMPTS, retry.max_attempts)
    return retry.max_attempts


def will_retry(outcome: FetchOutcome, retry: RetrySpec) -> bool:
    return is_retryable(outcome) and outcome.attempt < attempts_allowed(outcome, retry)


def backoff_seconds(attempt: int, retry: RetrySpec, jitter: float) -> float:
    """The wait before attempt ``attempt + 1``: ``base * 2**(attempt-1)``, capped, times a
    factor in [0.5, 1) from ``jitter`` in [0, 1) ("equal jitter": spread, never near zero)."""
    raw = min(retry.backoff_max_seconds, retry.backoff_base_seconds * 2 ** (attempt - 1))
    return raw * (0.5 + jitter / 2)
