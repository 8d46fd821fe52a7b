"""When a crawl is done: the parent's test over its shards' last reports.

Done means every shard's last report is idle, with every message the parent sent it applied,
no shard waits for credits the parent still has, and, for every pair of shards, the link
messages the sender says it sent are the ones the receiver says it applied. A shard reports
only after its link messages are delivered, and reports again whenever its counts change
while idle, so a message on its way always shows as a pair whose counts differ
(docs/architecture.md, "Links between shards").
"""

from __future__ import annotations

from shardcrawl.models import ShardReport

__all__ = ["crawl_done", "links_all_applied"]


def crawl_done(
    reports: dict[int, ShardReport], parent_sent: dict[int, int], *, credits_left: int
) -> bool:
    """``parent_sent`` is the seq of the parent's last message to each shard."""
    for index, sent in parent_sent.items():
        report = reports.get(index)
        if report is None or not report.idle or report.processed_seq != sent:
            return False
        if report.wants_credits > 0 and credits_left > 0:
            return False
    return links_all_applied(reports)


def links_all_applied(reports: dict[int, ShardReport]) -> bool:
    """Whether every link message a shard reports sent, its receiver reports applied."""
    for sender, report in reports.items():
        for receiver, sent in report.sent.items():
            other = reports.get(receiver)
            if other is None or other.applied.get(sender, 0) != sent:
                return False
    return True
