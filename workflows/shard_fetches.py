"""The fetches the shard engine plans (batches, robots.txt, sitemaps), run for it as activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError

from shardcrawl.core.fleet_names import fetch_task_queue
from shardcrawl.models import (
    BATCH_FAILED,
    STORE_UNAVAILABLE,
    BatchRequest,
    BatchResult,
    FetchOptions,
    RobotsRequest,
    RobotsResults,
    RobotsTarget,
    ShardInput,
    SitemapRequest,
    SitemapResult,
    SitemapResults,
    SitemapTarget,
)
from shardcrawl.policy.activity_timeouts import batch_timeout, documents_timeout
from shardcrawl.policy.batch_cutter import HostSlice
from shardcrawl.policy.segments import unpack_batch_result, unpack_records
from shardcrawl.policy.shard_engine import ShardEngine
from shardcrawl.workflows.run_size import RunSize
from shardcrawl.workflows.shard_activities import CANCELLED, ShardActivities, raise_if_final

__all__ = ["ShardFetches"]

# A worker that dies takes its batch's attempt with it, and a fleet that loses workers must
# not fail crawls, so a batch has 20 attempts; one that fails every worker it lands on (a page
# that crashes Scrapy) fails the crawl after those, some ten minutes on. A store that is down
# is waited out by the shard instead (ShardActivities).
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
    non_retryable_error_types=["UnknownSpider", STORE_UNAVAILABLE],
)
ROBOTS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=[STORE_UNAVAILABLE],
)
# A sitemaps activity that fails all its attempts: its sitemaps count as not read.
SITEMAP_FETCH_FAILED = "sitemap_fetch_failed"


class ShardFetches:
    """``fetch``: the options the parent stored once (prepare_crawl); inputs name them by
    digest."""

    def __init__(
        self,
        shard: ShardInput,
        engine: ShardEngine,
        activities: ShardActivities,
        size: RunSize,
        fetch: FetchOptions,
    ) -> None:
        self._input = shard
        self._spec = shard.spec
        self._engine = engine
        self._activities = activities
        self._size = size
        self._fetch = fetch
        self._fetch_digest = fetch.digest()

    def _fetch_queue(self, url: str) -> str | None:
        """The task queue of the fleet that fetches ``url``'s host; None: this shard's."""
        fleet = self._engine.fetch_queue(url)
        return None if fleet is None else fetch_task_queue(workflow.info().task_queue, fleet)

    async def robots(self, targets: list[RobotsTarget]) -> None:
        request = RobotsRequest(
            crawl_id=self._input.crawl_id,
            origins=targets,
            output=self._spec.output,
            fetch_digest=self._fetch_digest,
        )
        try:
            results = (
                await self._activities.run(
                    "fetch_robots",
                    request,
                    RobotsResults,
                    timeout=documents_timeout(self._fetch, min(len(request.origins), 3)),
                    retry_policy=ROBOTS_RETRY,
                    heartbeat=True,
                    task_queue=self._fetch_queue(targets[0].origin),
                )
            ).results
        except ActivityError as exc:
            raise_if_final(exc)
            workflow.logger.warning(
                "robots.txt of %d origins not fetched: %s", len(targets), exc.cause
            )
            results = None
        self._engine.robots_landed(targets, results)

    async def sitemaps(self, targets: list[SitemapTarget]) -> None:
        """Read sitemaps, then their entries from the store, a segment at a time."""
        request = SitemapRequest(
            crawl_id=self._input.crawl_id,
            output=self._spec.output,
            fetch_digest=self._fetch_digest,
            targets=targets,
        )
        try:
            results = (
                await self._activities.run(
                    "fetch_sitemaps",
                    request,
                    SitemapResults,
                    # A 50,000-URL sitemap writes a few dozen segments: three slow calls' worth.
                    timeout=documents_timeout(self._fetch, 3),
                    retry_policy=ROBOTS_RETRY,
                    heartbeat=True,
                    task_queue=self._fetch_queue(targets[0].url),
                )
            ).results
        except ActivityError as exc:
            raise_if_final(exc)
            workflow.logger.warning("%d sitemaps not read: %s", len(targets), exc.cause)
            results = [SitemapResult(error=SITEMAP_FETCH_FAILED) for _ in targets]
        for target, result in zip(targets, results, strict=True):
            for key in result.segments:
                records = unpack_records(await self._activities.load_segment(key))
                self._engine.sitemap_entries(target, records)
        self._engine.sitemaps_landed(targets, results)

    async def batch(self, seq: int, parts: list[HostSlice]) -> None:
        tasks = [task for part in parts for task in part.tasks]
        request = BatchRequest(
            crawl_id=self._input.crawl_id,
            shard=self._input.shard,
            batch_id=f"s{self._input.shard:04d}-b{seq:07d}",
            urls=tasks,
            slices=[self._engine.batch_slice(part) for part in parts],
            spider=self._spec.spider,
            output=self._spec.output,
            fetch_digest=self._fetch_digest,
            previous_crawl=self._input.previous_crawl,
        )
        self._size.note(request)
        try:
            # The same request again after a store outage: the same batch id, so the same
            # items keys, which a write that landed unseen before the outage is replaced by.
            result = await self._activities.run(
                "crawl_batch",
                request,
                BatchResult,
                timeout=batch_timeout(request, self._fetch),
                retry_policy=BATCH_RETRY,
                heartbeat=True,
                task_queue=self._fetch_queue(parts[0].origin),
            )
        except CANCELLED:
            self._engine.cut_off(parts)
            raise
        except ActivityError as exc:
            raise_if_final(exc)
            cause = exc.cause
            if isinstance(cause, TemporalCancelledError):
                self._engine.cut_off(parts)
                return
            hosts = ", ".join(part.origin for part in parts[:3])
            more = f" and {len(parts) - 3} more" if len(parts) > 3 else ""
            raise ApplicationError(
                f"batch {request.batch_id} ({len(tasks)} URLs of {hosts}{more}) failed "
                f"{BATCH_RETRY.maximum_attempts} times, the last with {cause}: the crawl "
                "stops rather than drop its URLs",
                type=BATCH_FAILED,
                non_retryable=True,
            ) from exc
        self._size.note(result)
        if result.segments:
            outcomes, links = unpack_batch_result(
                [await self._activities.load_segment(key) for key in result.segments]
            )
            result = result.model_copy(update={"outcomes": outcomes, "links": links})
        self._engine.landed(parts, result)
