"""Crawl-level activities: check a crawl can run before it starts, and write its report."""

from __future__ import annotations

import asyncio
import json

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.scrapy_runtime import ScrapyRuntime, UnknownSpiderError
from activities.stores import StoreCache
from shardcrawl import layout
from shardcrawl.contracts import PrepareRequest, ReportRequest
from shardcrawl.errors import StoreError

__all__ = ["AdminActivities"]


class AdminActivities:
    def __init__(self, *, runtime: ScrapyRuntime, stores: StoreCache) -> None:
        self._runtime = runtime
        self._stores = stores

    @activity.defn(name="prepare_crawl")
    async def prepare_crawl(self, request: PrepareRequest) -> None:
        """Fail the crawl at once, not batch by batch, on an unknown spider or unwritable store."""
        try:
            self._runtime.spider_class(request.spider)
        except UnknownSpiderError as exc:
            raise ApplicationError(str(exc), type="UnknownSpider", non_retryable=True) from exc
        try:
            store = self._stores.get(request.output)
            await asyncio.to_thread(store.check_writable)
        except (StoreError, ValueError) as exc:
            raise ApplicationError(str(exc), type="StoreUnavailable", non_retryable=True) from exc

    @activity.defn(name="write_report")
    async def write_report(self, request: ReportRequest) -> str:
        report = request.report
        key = layout.report_key(report.crawl_id)
        body = json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
        await self._stores.put(report.output, key, body.encode("utf-8"))
        return key
