"""What the shard signals other shards (the links they own) and the proxy broker (its asks)."""

from __future__ import annotations

import asyncio

from temporalio import workflow

from shardcrawl.models import LinkMessage, ShardInput, UrlTask, shard_workflow_id
from shardcrawl.models.proxy_messages import broker_workflow_id
from shardcrawl.policy.link_counts import LinkCounts
from shardcrawl.policy.proxy_router import ProxyRouter, brokered
from shardcrawl.workflows.run_size import RunSize

__all__ = ["send_links", "talk_to_broker"]

# Links per message to another shard: each message stays one small payload.
MAX_LINKS_PER_MESSAGE = 1000


async def send_links(
    forwards: dict[int, list[UrlTask]],
    *,
    crawl_id: str,
    sender: int,
    links: LinkCounts,
    size: RunSize,
    finishing: bool,
) -> None:
    """Links for other shards, straight to each owner, in messages of at most
    MAX_LINKS_PER_MESSAGE. Once the crawl is ``finishing`` they are not sent: the owners
    may have ended (a finish comes only when every shard is idle, or on a cancel)."""
    if finishing:
        dropped = sum(len(tasks) for tasks in forwards.values())
        workflow.logger.info("crawl finishing: %d links for other shards not sent", dropped)
        return
    sends = []
    for owner, tasks in forwards.items():
        handle = workflow.get_external_workflow_handle(shard_workflow_id(crawl_id, owner))
        for start in range(0, len(tasks), MAX_LINKS_PER_MESSAGE):
            chunk = tasks[start : start + MAX_LINKS_PER_MESSAGE]
            message = LinkMessage.of(sender, links.next_seq(owner), chunk)
            size.note(message)
            sends.append(handle.signal("links", message))
    await asyncio.gather(*sends)


async def talk_to_broker(
    router: ProxyRouter, shard: ShardInput, size: RunSize, *, closing: bool
) -> None:
    """What the engine has for the proxy broker (asks, leases given back, what the
    fetches through each proxy came to), in one message; the last one says so."""
    if not brokered(shard.spec.proxies) or not (router.has_message() or closing):
        return
    message = router.take_message()
    message.closing = closing
    size.note(message)
    broker = workflow.get_external_workflow_handle(broker_workflow_id(shard.crawl_id))
    await broker.signal("asks", message)
