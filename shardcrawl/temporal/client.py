"""A small typed client over Temporal for starting and steering crawls; the CLI is built on it."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import cast

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from shardcrawl.core.errors import CrawlIdInUse, root_cause
from shardcrawl.core.fleet_names import fetch_task_queue
from shardcrawl.models import (
    CrawlProgress,
    CrawlReport,
    CrawlSpec,
    FleetStatus,
    HostStats,
    ProxyStats,
    ShardTotals,
    shard_workflow_id,
)
from shardcrawl.models.proxy_messages import broker_workflow_id
from shardcrawl.policy.report import merge_hosts, sum_totals
from shardcrawl.policy.visibility import crawl_details, crawl_summary
from shardcrawl.store import normalize_store_url
from shardcrawl.temporal.config import Config
from shardcrawl.temporal.connection import connect, run
from shardcrawl.temporal.schedules import CrawlSchedules

__all__ = ["CrawlClient", "CrawlHandle", "describe_fleets", "new_crawl_id", "run"]

_FAILED = (
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
)
STATUS_HOSTS = 10
"""Busiest hosts per shard in a live status (parked and abandoned hosts always show)."""
POLLER_SEEN_SECONDS = 120
"""A worker counts as serving a queue if it polled it this recently (a poll waits up to a
minute; Temporal lists a worker for minutes after it stopped)."""


async def describe_fleets(
    client: Client, main_queue: str, in_flight: dict[str, int]
) -> dict[str, FleetStatus]:
    """Each fleet's activities in flight (the shards' count) beside Temporal's view of its
    task queue: the workers polling it lately, and the backlog no worker has taken."""

    async def one(fleet: str) -> FleetStatus:
        queue = fetch_task_queue(main_queue, fleet)
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                report_stats=True,
            )
        )
        now = datetime.now(UTC)
        workers = {
            p.identity
            for p in described.pollers
            if (now - p.last_access_time.ToDatetime(UTC)).total_seconds() < POLLER_SEEN_SECONDS
        }
        stats = described.stats
        return FleetStatus(
            task_queue=queue,
            in_flight=in_flight[fleet],
            workers=len(workers),
            waiting=in_flight[fleet] > 0 and not workers,
            backlog=stats.approximate_backlog_count,
            backlog_age_seconds=round(
                stats.approximate_backlog_age.ToTimedelta().total_seconds(), 1
            ),
        )

    names = sorted(in_flight)
    return dict(zip(names, await asyncio.gather(*(one(f) for f in names)), strict=True))


def new_crawl_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"crawl-{stamp}-{secrets.token_hex(3)}"


class CrawlHandle:
    """One crawl, by id: its live progress, its end, and control signals."""

    def __init__(self, client: Client, handle: WorkflowHandle) -> None:
        self._client = client
        self._handle = handle
        self.crawl_id = handle.id

    async def status(self) -> CrawlProgress:
        """The crawl's progress with each shard's live counters (queried, not reported)."""
        failure = await self.failure()
        try:
            progress = await self._handle.query("progress", result_type=CrawlProgress)
        except RPCError:
            if failure is None:
                raise
            # A closed crawl answers queries only while a worker runs: say what is known.
            progress = CrawlProgress(crawl_id=self.crawl_id, state="failed")
        if failure is not None:
            return progress.model_copy(update={"state": "failed", "failure": failure})
        if (
            progress.state in ("starting", "completed", "cancelled", "failed")
            or not progress.shard_count
        ):
            return progress
        # A query sees the workflow clock of its last task; a running crawl's age is now.
        if progress.started_at is not None:
            age = (datetime.now(UTC) - progress.started_at).total_seconds()
            progress.elapsed_seconds = round(max(age, progress.elapsed_seconds), 3)
        handles = [
            self._client.get_workflow_handle(shard_workflow_id(self.crawl_id, i))
            for i in range(progress.shard_count)
        ]
        host_type = cast(type, dict[str, HostStats])
        proxy_type = cast(type, dict[str, ProxyStats])
        fleet_type = cast(type, dict[str, int])
        try:
            shards, per_shard, loads = await asyncio.gather(
                asyncio.gather(*(h.query("totals", result_type=ShardTotals) for h in handles)),
                asyncio.gather(
                    *(h.query("hosts", STATUS_HOSTS, result_type=host_type) for h in handles)
                ),
                asyncio.gather(*(h.query("fleets", result_type=fleet_type) for h in handles)),
            )
        except RPCError:
            return progress  # a shard just closed: its last report is in the progress
        broker = self._client.get_workflow_handle(broker_workflow_id(self.crawl_id))
        try:
            proxies = await broker.query("proxies", result_type=proxy_type)
        except RPCError:
            proxies = {}  # no route through a pool (no broker), or it just closed
        in_flight: dict[str, int] = {}
        for load in loads:
            for fleet, count in load.items():
                in_flight[fleet] = in_flight.get(fleet, 0) + count
        fleets = {}
        if in_flight:
            main_queue = (await self._handle.describe()).task_queue
            fleets = await describe_fleets(self._client, main_queue, in_flight)
        hosts = merge_hosts(per_shard)
        totals = sum_totals(list(shards))
        elapsed = progress.elapsed_seconds
        return progress.model_copy(
            update={
                "shards": list(shards),
                "totals": totals,
                "hosts": dict(sorted(hosts.items())),
                "proxies": proxies,
                "fleets": fleets,
                "pages_per_second": round(totals.pages / elapsed, 3) if elapsed > 0 else 0.0,
            }
        )

    async def output(self) -> str:
        """Where the crawl writes (its spec's output, from the memo the crawl sets)."""
        memo = await (await self._handle.describe()).memo()
        return str(memo.get("output") or "output")

    async def execution_status(self) -> WorkflowExecutionStatus | None:
        return (await self._handle.describe()).status

    async def failure(self) -> str | None:
        """Why the crawl failed (the root cause, not Temporal's wrapper), or None if it did
        not fail."""
        if await self.execution_status() not in _FAILED:
            return None
        try:
            await self._handle.result()
        except WorkflowFailureError as exc:
            return root_cause(exc)
        return None

    async def wait(self) -> CrawlReport:
        """The report of a completed crawl; raises WorkflowFailureError otherwise."""
        return await self._handle.result()

    async def report(self) -> CrawlReport | None:
        """The final report, also of a cancelled crawl (None while it runs). A completed
        crawl's comes from its result, so no worker need be running."""
        if await self.execution_status() == WorkflowExecutionStatus.COMPLETED:
            return await self._handle.result()
        # The SDK types result_type as a class, but the pydantic converter takes any type.
        optional_report = cast(type, CrawlReport | None)
        return await self._handle.query("final_report", result_type=optional_report)

    async def pause(self) -> None:
        await self._handle.signal("pause")

    async def resume(self) -> None:
        await self._handle.signal("resume")

    async def cancel(self) -> None:
        await self._handle.cancel()


class CrawlClient:
    """Starts crawls on a task queue and finds them again by id."""

    def __init__(self, client: Client, *, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue
        self.schedules = CrawlSchedules(client, task_queue=task_queue)

    @classmethod
    async def connect(cls, config: Config) -> CrawlClient:
        return cls(await connect(config), task_queue=config.task_queue)

    async def start(self, spec: CrawlSpec, *, crawl_id: str | None = None) -> CrawlHandle:
        """Start a crawl. A relative local output is made absolute here, where the crawl is
        started, not on whichever worker runs a batch."""
        spec = spec.model_copy(update={"output": normalize_store_url(spec.output)})
        crawl_id = crawl_id or new_crawl_id()
        try:
            handle = await self.client.start_workflow(
                "CrawlWorkflow",
                spec.model_dump(mode="json"),
                id=crawl_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                result_type=CrawlReport,
                static_summary=crawl_summary(spec),
                static_details=crawl_details(spec),
            )
        except WorkflowAlreadyStartedError:
            raise CrawlIdInUse(
                f"crawl id {crawl_id!r} is taken (a crawl with it ran or runs, and owns its "
                "output folder): choose another, or leave it out for a new one"
            ) from None
        # By id alone, not pinned to the first run: the crawl continues as new as it grows,
        # and signals or queries to a closed run fail or answer stale.
        return self.get(handle.id)

    def get(self, crawl_id: str) -> CrawlHandle:
        return CrawlHandle(
            self.client, self.client.get_workflow_handle(crawl_id, result_type=CrawlReport)
        )
