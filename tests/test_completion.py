"""The crawl's end test (``crawl_done``): never true while a link message between shards is
unapplied, whatever the order in which messages and reports arrive.

Unit cases for each condition, then a simulation driven by hypothesis: shards apply link
messages (which make new ones, to any shard), report snapshots that reach the parent late and
in order, and the parent checks after every report. Whenever it says done, no message may be
waiting anywhere.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from shardcrawl.models import ShardStatus
from shardcrawl.policy.completion import crawl_done
from shardcrawl.policy.link_counts import LinkCounts


def _status(shard: int, *, idle: bool = True, seq: int = 1, **kw: object) -> ShardStatus:
    return ShardStatus(shard=shard, processed_seq=seq, idle=idle, **kw)  # type: ignore[arg-type]


def test_done_when_all_idle_and_every_message_applied() -> None:
    reports = {
        0: _status(0, sent={1: 3}, applied={1: 1}),
        1: _status(1, sent={0: 1}, applied={0: 3}),
    }
    assert crawl_done(reports, {0: 1, 1: 1}, credits_left=10)


def test_not_done_while_a_receiver_has_not_applied_what_was_sent() -> None:
    reports = {0: _status(0, sent={1: 3}), 1: _status(1, applied={0: 2})}
    assert not crawl_done(reports, {0: 1, 1: 1}, credits_left=0)


def test_not_done_while_a_receiver_has_not_reported() -> None:
    assert not crawl_done({0: _status(0, sent={1: 1})}, {0: 1}, credits_left=0)


def test_not_done_while_a_shard_is_busy_or_behind_the_parent() -> None:
    assert not crawl_done({0: _status(0, idle=False)}, {0: 1}, credits_left=0)
    assert not crawl_done({0: _status(0, seq=1)}, {0: 2}, credits_left=0)


def test_not_done_while_a_shard_wants_credits_that_are_left() -> None:
    reports = {0: _status(0, wants_credits=10)}
    assert not crawl_done(reports, {0: 1}, credits_left=5)
    assert crawl_done(reports, {0: 1}, credits_left=0)


@dataclass
class _Shard:
    index: int
    counts: LinkCounts = field(default_factory=LinkCounts)
    # (sender, seq, hops left): a message delivered (the signal was awaited) and not applied.
    inbox: list[tuple[int, int, int]] = field(default_factory=list)

    def snapshot(self) -> ShardStatus:
        return ShardStatus(
            shard=self.index,
            processed_seq=1,
            idle=not self.inbox,
            sent=self.counts.sent(),
            applied=self.counts.applied(),
        )


SHARDS = 3


@given(
    st.lists(
        st.tuples(st.sampled_from(["apply", "report", "deliver"]), st.integers(0, SHARDS - 1)),
        max_size=200,
    ),
    st.lists(st.integers(0, SHARDS - 1), min_size=1, max_size=50),
)
def test_the_end_test_never_fires_with_a_message_unapplied(
    steps: list[tuple[str, int]], fanout: list[int]
) -> None:
    shards = [_Shard(i) for i in range(SHARDS)]
    channels: list[deque[ShardStatus]] = [deque() for _ in range(SHARDS)]
    parent: dict[int, ShardStatus] = {}
    choices = iter(fanout * 10)
    # The parent's seeds went to shard 0 as a message it must apply; it fans out from there.
    shards[0].inbox.append((0, shards[0].counts.next_seq(0), 3))
    for action, i in steps:
        shard = shards[i]
        if action == "apply" and shard.inbox:
            sender, seq, hops = shard.inbox.pop(0)
            if shard.counts.apply(sender, seq) and hops:
                for _ in range(2):
                    receiver = next(choices, 0)
                    shards[receiver].inbox.append((i, shard.counts.next_seq(receiver), hops - 1))
        elif action == "report":
            channels[i].append(shard.snapshot())
        elif action == "deliver" and channels[i]:
            parent[i] = channels[i].popleft()
            if crawl_done(parent, {s: 1 for s in range(SHARDS)}, credits_left=0):
                assert all(not s.inbox for s in shards), "done with a message unapplied"
