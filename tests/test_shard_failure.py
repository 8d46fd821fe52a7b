"""A shard that fails makes the crawl fail at once with the cause, instead of hanging.

The activities are stubs registered under the real names (no patching): ``crawl_batch`` fails
the way a worker without the spec's spider does.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from shardcrawl.models import (
    BatchRequest,
    PrepareRequest,
    PrepareResult,
    RobotsRequest,
    RobotsResult,
    RobotsResults,
)
from shardcrawl.temporal.worker import WORKFLOWS, workflow_runner


@activity.defn(name="prepare_crawl")
async def prepare_crawl(request: PrepareRequest) -> PrepareResult:
    return PrepareResult()


@activity.defn(name="fetch_robots")
async def fetch_robots(request: RobotsRequest) -> RobotsResults:
    return RobotsResults(results=[RobotsResult() for _ in request.origins])


@activity.defn(name="crawl_batch")
async def crawl_batch(request: BatchRequest) -> None:
    raise ApplicationError(
        "unknown spider 'pages' (known: none)", type="UnknownSpider", non_retryable=True
    )


async def test_a_failing_shard_fails_the_crawl(client, task_queue):
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[prepare_crawl, fetch_robots, crawl_batch],
        workflow_runner=workflow_runner(),
    ):
        handle = await client.start_workflow(
            "CrawlWorkflow",
            {"seeds": ["http://127.0.0.2/"], "allow_private_networks": True, "shards": 2},
            id=f"failing-shard-{task_queue}",
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), timeout=60)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "ShardFailed"
    assert "UnknownSpider" in str(cause) or "unknown spider" in str(cause)
