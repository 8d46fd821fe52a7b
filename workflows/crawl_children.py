"""The crawl's child workflows (broker, shards): started, signalled by id and stopped by it."""

from __future__ import annotations

import asyncio
from collections.abc import Container

from temporalio import workflow
from temporalio.workflow import ExternalWorkflowHandle, ParentClosePolicy

from shardcrawl.models import CrawlSpec, Enqueue, PrepareResult, ShardInput, shard_workflow_id
from shardcrawl.models.proxy_messages import BrokerInput, broker_workflow_id
from shardcrawl.policy.proxy_router import brokered
from shardcrawl.policy.visibility import shard_summary
from shardcrawl.workflows.proxy_broker import ProxyBrokerWorkflow
from shardcrawl.workflows.run_size import RunSize
from shardcrawl.workflows.shard import DomainShardWorkflow

__all__ = [
    "Shards",
    "cancel_children",
    "enqueue",
    "finish_broker",
    "finish_shards",
    "pause_shards",
    "shard_handles",
    "start_broker",
    "start_shards",
]

# Children are started with the ABANDON parent-close policy, as Temporal applies one when the
# parent continues as new: so they are reached by workflow id, never by run (these handles),
# and cancelled by the crawl itself when it fails.
Shards = list[ExternalWorkflowHandle[DomainShardWorkflow]]


async def start_broker(crawl_id: str, spec: CrawlSpec) -> None:
    await workflow.start_child_workflow(
        ProxyBrokerWorkflow.run,
        BrokerInput(
            crawl_id=crawl_id,
            proxies=spec.proxies,
            history_events_per_run=spec.history_events_per_run,
        ),
        id=broker_workflow_id(crawl_id),
        parent_close_policy=ParentClosePolicy.ABANDON,
        static_summary="proxy broker",
    )


async def start_shards(
    crawl_id: str, spec: CrawlSpec, prepared: PrepareResult, size: RunSize
) -> None:
    """One shard per index, one after another; ``spec`` is the shards' (few seeds)."""
    for index in range(spec.shards):
        shard = ShardInput(
            crawl_id=crawl_id,
            shard=index,
            shard_count=spec.shards,
            spec=spec,
            previous_crawl=prepared.previous_crawl,
            previous_crawl_files=prepared.previous_crawl_files[index]
            if prepared.previous_crawl_files
            else 0,
        )
        size.note(shard)
        await workflow.start_child_workflow(
            DomainShardWorkflow.run,
            shard,
            id=shard_workflow_id(crawl_id, index),
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=shard_summary(index, spec.shards),
            memo={"crawl_id": crawl_id, "shard": index, "shard_count": spec.shards},
        )


def shard_handles(crawl_id: str, count: int) -> Shards:
    """Each shard's handle, by workflow id alone (any run of it)."""
    return [
        workflow.get_external_workflow_handle_for(
            DomainShardWorkflow.run, shard_workflow_id(crawl_id, i)
        )
        for i in range(count)
    ]


async def finish_broker(crawl_id: str) -> None:
    """Tell the broker to end (it answers with ``proxies_finished``)."""
    broker = workflow.get_external_workflow_handle(broker_workflow_id(crawl_id))
    await broker.signal(ProxyBrokerWorkflow.finish)


async def cancel_children(
    crawl_id: str,
    spec: CrawlSpec | None,
    shards: Shards,
    spared: set[int],
) -> None:
    """Cancel every shard not in ``spared`` (the failed one, those finished), and the broker;
    the ABANDON policy would leave them running."""
    others = [shard.cancel() for index, shard in enumerate(shards) if index not in spared]
    if spec is not None and brokered(spec.proxies):
        broker = workflow.get_external_workflow_handle(broker_workflow_id(crawl_id))
        others.append(broker.cancel())
    # A shard that closed meanwhile cannot be cancelled; that is fine.
    await asyncio.gather(*others, return_exceptions=True)


async def pause_shards(shards: Shards, paused: bool) -> None:
    await asyncio.gather(
        *(shard.signal(DomainShardWorkflow.set_paused, paused) for shard in shards)
    )


async def enqueue(shards: Shards, messages: list[tuple[int, Enqueue]]) -> None:
    await asyncio.gather(
        *(shards[index].signal(DomainShardWorkflow.enqueue, message) for index, message in messages)
    )


async def finish_shards(shards: Shards, *, cancel: bool, finished: Container[int]) -> None:
    """Tell every shard not ``finished`` yet to finish (``cancel``: cutting its batches off)."""
    await asyncio.gather(
        *(
            shard.signal(DomainShardWorkflow.finish, cancel)
            for index, shard in enumerate(shards)
            if index not in finished
        )
    )
