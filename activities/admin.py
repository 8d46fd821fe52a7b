"""Crawl-level activities: check a crawl can run before it starts, and write its report."""

from __future__ import annotations

import json

from temporalio import activity
from temporalio.exceptions import ApplicationError

from shardcrawl.activities.previous_crawl import index_previous_crawl
from shardcrawl.activities.report_html import render_report_html
from shardcrawl.activities.scrapy_runtime import ScrapyRuntime, UnknownSpiderError
from shardcrawl.activities.stores import StoreCache
from shardcrawl.core import layout
from shardcrawl.core.errors import StoreError
from shardcrawl.models import (
    STORE_FAILED,
    CrawlReport,
    HostStats,
    PrepareRequest,
    PrepareResult,
    ReportRequest,
)
from shardcrawl.policy.report import ShardPart, build_report, trim_hosts
from shardcrawl.policy.segments import unpack_records

__all__ = ["AdminActivities"]


class AdminActivities:
    def __init__(self, *, runtime: ScrapyRuntime, stores: StoreCache) -> None:
        self._runtime = runtime
        self._stores = stores

    @activity.defn(name="prepare_crawl")
    async def prepare_crawl(self, request: PrepareRequest) -> PrepareResult:
        """Fail the crawl at once, not batch by batch, on an unknown spider or unwritable store;
        store the fetch options its activities name by digest; for an incremental crawl,
        index the previous crawl's pages by shard."""
        try:
            self._runtime.spider_class(request.spider)
        except UnknownSpiderError as exc:
            raise ApplicationError(str(exc), type="UnknownSpider", non_retryable=True) from exc
        try:
            await self._stores.check_writable(request.output)
        except ValueError as exc:
            raise ApplicationError(str(exc), type=STORE_FAILED, non_retryable=True) from exc
        if request.fetch is not None:
            key = layout.fetch_options_key(request.crawl_id, request.fetch.digest())
            await self._stores.put(request.output, key, request.fetch.model_dump_json().encode())
        return await index_previous_crawl(self._stores, request)

    @activity.defn(name="write_report")
    async def write_report(self, request: ReportRequest) -> CrawlReport:
        """Merge the shards' per-host stats from the store into report.json, drop the crawl's
        claim-check state, and return the report with its busiest hosts only (history keeps
        it). A retry after the state is gone returns the report already written."""
        key = layout.report_key(request.crawl_id)
        try:
            parts = [await self._shard_part(request, i) for i in range(len(request.shards))]
        except _SegmentGone:
            written = await self._stores.get_bytes(request.output, key)
            if written is None:
                raise
            return trim_hosts(CrawlReport.model_validate_json(written))
        report = build_report(
            crawl_id=request.crawl_id,
            status=request.status,
            output=request.output,
            started_at=request.started_at,
            finished_at=request.finished_at,
            results=parts,
            previous_crawl=request.previous_crawl,
            proxies=request.proxies,
        )
        if request.warc is not None:
            report.warc_files = request.warc.files
            report.warc_records = request.warc.records
            report.warc_bytes = request.warc.bytes
        body = json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
        await self._stores.put(request.output, key, body.encode("utf-8"))
        html = render_report_html(report).encode("utf-8")
        await self._stores.put(request.output, layout.report_html_key(request.crawl_id), html)
        await self._stores.delete_prefix(request.output, layout.state_prefix(request.crawl_id))
        if request.schedule and request.status == "completed":
            pointer = json.dumps({"crawl_id": request.crawl_id}).encode()
            await self._stores.put(
                request.output, layout.schedule_pointer_key(request.schedule), pointer
            )
        return trim_hosts(report)

    async def _shard_part(self, request: ReportRequest, index: int) -> ShardPart:
        result = request.shards[index]
        hosts: dict[str, HostStats] = {}
        for segment_key in result.hosts_segments:
            data = await self._stores.get_bytes(request.output, segment_key)
            if data is None:
                raise _SegmentGone(f"state segment {segment_key!r} is missing")
            for name, stats in unpack_records(data):
                hosts[name] = HostStats.model_validate(stats)
        return ShardPart(
            totals=result.totals,
            hosts=hosts,
            unfetched=result.unfetched,
            series=result.series,
        )


class _SegmentGone(StoreError):
    """A shard's stored stats are gone: a report was written and its state dropped before."""
