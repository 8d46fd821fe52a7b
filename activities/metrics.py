"""What each batch did, as Prometheus counters on the worker's metrics endpoint, next to the
Temporal SDK's own (``SHARDCRAWL_METRICS_ADDRESS``). Labelled by crawl, never by URL or host:
per-host numbers live in status and report.json, where their count does not matter."""

from __future__ import annotations

from temporalio import activity

from shardcrawl.models import DEFERRED, BatchRequest, BatchResult
from shardcrawl.policy.shard_stats import NOT_A_REQUEST

__all__ = ["record_batch"]


def record_batch(request: BatchRequest, result: BatchResult, seconds: float) -> None:
    """Counters of one batch; call inside the activity (the meter is the activity's)."""
    meter = activity.metric_meter().with_additional_attributes({"crawl_id": request.crawl_id})
    requests = meter.create_counter("shardcrawl_requests", "requests sent, every attempt")
    responses = meter.create_counter("shardcrawl_responses", "responses, by status class")
    blocked = meter.create_counter("shardcrawl_blocked", "responses that were blocks")
    throttled = meter.create_counter("shardcrawl_throttled", "429 responses")
    failures = meter.create_counter("shardcrawl_failures", "attempts without a response")
    retries = meter.create_counter("shardcrawl_retries", "requests that were a URL's retry")
    deferred = meter.create_counter("shardcrawl_deferred", "URLs held back by a Retry-After")
    links = meter.create_counter("shardcrawl_links", "links found, every occurrence")
    pages = meter.create_counter("shardcrawl_records", "page records written")
    for outcome in result.outcomes:
        if outcome.error == DEFERRED:
            deferred.add(1)
            continue
        if outcome.error in NOT_A_REQUEST:
            continue
        requests.add(1)
        if outcome.attempt > 1:
            retries.add(1)
        if outcome.status is None:
            failures.add(1, {"class": outcome.error or "unknown"})
            continue
        responses.add(1, {"status_class": f"{outcome.status // 100}xx"})
        if outcome.blocked:
            blocked.add(1)
        if outcome.status == 429:
            throttled.add(1)
    links.add(sum(link.count for link in result.links))
    pages.add(result.items_written)
    meter.create_histogram_float(
        "shardcrawl_batch_duration", "time to crawl one batch", "s"
    ).record(seconds)
