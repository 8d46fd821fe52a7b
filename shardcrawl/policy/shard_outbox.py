"""The links a shard found for other shards, held until they are worth a message."""

from __future__ import annotations

from collections.abc import Callable

from shardcrawl.models import UrlTask
from shardcrawl.policy.frontier import RecentSet

__all__ = ["FORWARD_BATCH", "FORWARD_WAIT_SECONDS", "ShardOutbox"]

# Foreign URLs this shard remembers having forwarded, so a link seen on many pages crosses to
# its owner once, not once per page. Only an optimisation: the owner still dedups everything.
FORWARDED_MEMORY = 200_000
# Links for other shards wait for this many, or this long, while batches are in flight: each
# message is three history events and a workflow task on both sides (some 20 ms of the
# Temporal server's CPU, docs/benchmarks.md), so few large ones pay. Not longer: a link
# that waits lets the owner reach the page first by a longer path, at a greater depth, and
# under max_depth a page's depth decides what of it is crawled (10 s lost pages within
# max_depth 6 in tests/test_node_loss.py).
FORWARD_BATCH = 500
FORWARD_WAIT_SECONDS = 2.0


class ShardOutbox:
    """Exists so links cross to their owning shard in few large messages, each link once."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._forwarded = RecentSet(capacity=FORWARDED_MEMORY)
        # Links for other shards, by owner, and since when the oldest waits.
        self._outbox: dict[int, list[UrlTask]] = {}
        self._outbox_size = 0
        self._outbox_since = 0.0

    def __bool__(self) -> bool:
        return bool(self._outbox)

    def add(self, owner: int, task: UrlTask) -> bool:
        """Holds a link for its owner; False if it was forwarded already (a duplicate)."""
        if not self._forwarded.add(task):
            return False
        if not self._outbox:
            self._outbox_since = self._clock()
        self._outbox.setdefault(owner, []).append(task)
        self._outbox_size += 1
        return True

    def due(self, *, in_flight: int) -> bool:
        """Links for other shards go in few, large reports: once enough wait, once the oldest
        waited FORWARD_WAIT_SECONDS, or at once when nothing of this shard is in flight (so a
        shard never sits on links while it has nothing else to do)."""
        if not self._outbox:
            return False
        waited = self._clock() - self._outbox_since
        return self._outbox_size >= FORWARD_BATCH or waited >= FORWARD_WAIT_SECONDS or not in_flight

    def deadline(self) -> float | None:
        """When the oldest waiting link is due; None if none waits."""
        return self._outbox_since + FORWARD_WAIT_SECONDS if self._outbox else None

    def take(self) -> dict[int, list[UrlTask]]:
        """The links waiting for other shards, by owning shard."""
        forwards = dict(sorted(self._outbox.items()))
        self._outbox, self._outbox_size = {}, 0
        return forwards
