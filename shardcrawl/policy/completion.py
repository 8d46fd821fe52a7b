"""When a crawl is done: the parent's test over its shards' last statuses.

Done means every shard's last status is idle, with every message the parent sent it applied,
no shard waits for credits the parent still has, and, for every pair of shards, the link
messages the sender says it sent are the ones the receiver says it applied. A shard sends
its status only after its link messages are delivered, and again whenever its counts change
while idle, so a message on its way always shows as a pair whose counts differ
(docs/architecture.md, "Links between shards").
"""

from __future__ import annotations

from shardcrawl.models import ShardStatus

__all__ = ["crawl_done", "links_all_applied"]


def crawl_done(
    statuses: dict[int, ShardStatus], parent_sent: dict[int, int], *, credits_left: int
) -> bool:
    """``parent_sent`` is the seq of the parent's last message to each shard."""
    for index, sent in parent_sent.items():
        status = statuses.get(index)
        if status is None or not status.idle or status.processed_seq != sent:
            return False
        if status.wants_credits > 0 and credits_left > 0:
            return False
    return links_all_applied(statuses)


def links_all_applied(statuses: dict[int, ShardStatus]) -> bool:
    """Whether every link message a shard's status says it sent, its receiver's says it applied."""
    for sender, status in statuses.items():
        for receiver, sent in status.sent.items():
            other = statuses.get(receiver)
            if other is None or other.applied.get(sender, 0) != sent:
                return False
    return True
