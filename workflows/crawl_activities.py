"""The crawl's own activities (prepare, WARC index, report), with their retries and timeouts."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from shardcrawl.models import (
    CrawlReport,
    CrawlSpec,
    PrepareRequest,
    PrepareResult,
    ProxyStats,
    ReportRequest,
    ShardResult,
    WarcIndexRequest,
    WarcTotals,
)
from shardcrawl.workflows.run_size import RunSize

__all__ = ["prepare_crawl", "write_crawl_report"]

ADMIN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
# The report waits out a store outage (a store that refuses for good fails it at once).
REPORT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


async def prepare_crawl(request: PrepareRequest) -> PrepareResult:
    return await workflow.execute_activity(
        "prepare_crawl",
        request,
        result_type=PrepareResult,
        start_to_close_timeout=timedelta(seconds=300),
        retry_policy=ADMIN_RETRY,
    )


async def write_crawl_report(
    crawl_id: str,
    spec: CrawlSpec,
    status: str,
    *,
    started_at: datetime | None,
    results: dict[int, ShardResult],
    previous_crawl: str | None,
    schedule: str | None,
    proxies: dict[str, ProxyStats],
    size: RunSize,
) -> CrawlReport:
    """The WARC index merged (if the crawl writes WARC files), then the report written."""
    warc = None
    if spec.warc:
        warc = await workflow.execute_activity(
            "merge_warc_index",
            WarcIndexRequest(crawl_id=crawl_id, output=spec.output),
            result_type=WarcTotals,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=REPORT_RETRY,
        )
    request = ReportRequest(
        crawl_id=crawl_id,
        status=status,  # type: ignore[arg-type]
        output=spec.output,
        started_at=started_at or workflow.now(),
        finished_at=workflow.now(),
        shards=[results[i] for i in sorted(results)],
        previous_crawl=previous_crawl,
        schedule=schedule,
        warc=warc,
        proxies=proxies,
    )
    size.note(request)
    report = await workflow.execute_activity(
        "write_report",
        request,
        result_type=CrawlReport,
        start_to_close_timeout=timedelta(seconds=120),
        retry_policy=REPORT_RETRY,
    )
    size.note(report)
    return report
