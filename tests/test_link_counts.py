"""Counts of link messages between shards: each message applied once, in any order."""

from __future__ import annotations

from shardcrawl.models import LinkMessage, RequestData, UrlTask
from shardcrawl.policy.link_counts import LinkCounts


def test_sent_counts_per_receiver() -> None:
    counts = LinkCounts()
    assert [counts.next_seq(2), counts.next_seq(2), counts.next_seq(5)] == [1, 2, 1]
    assert counts.sent() == {2: 2, 5: 1}


def test_a_message_is_applied_once_whatever_the_order() -> None:
    counts = LinkCounts()
    assert counts.apply(1, 2) and counts.applied() == {1: 1}
    assert not counts.apply(1, 2), "a second delivery is not applied"
    assert counts.apply(1, 1) and counts.applied() == {1: 2}
    assert not counts.apply(1, 1)
    assert counts.apply(3, 1) and counts.applied() == {1: 2, 3: 1}


def test_counts_survive_export_and_restore_through_json() -> None:
    import json

    counts = LinkCounts()
    counts.next_seq(4)
    counts.apply(0, 1)
    counts.apply(0, 3)
    restored = LinkCounts()
    restored.restore(json.loads(json.dumps(counts.export())))
    assert restored.sent() == {4: 1} and restored.applied() == {0: 2}
    assert not restored.apply(0, 3) and restored.apply(0, 2)
    assert restored.next_seq(4) == 2


def test_link_messages_carry_plain_links_as_columns_and_rich_ones_whole() -> None:
    tasks = [
        UrlTask(url="http://a.test/1", depth=1),
        UrlTask(url="http://a.test/2", depth=2, priority=5),
        UrlTask(url="http://a.test/3", depth=1, request=RequestData(callback="parse_item")),
        UrlTask(url="http://a.test/4", depth=3),
    ]
    message = LinkMessage.of(0, 1, tasks)
    assert message.urls == ["http://a.test/1", "http://a.test/4"]
    assert message.depths == [1, 3]
    assert len(message.rich) == 2
    assert sorted(message.tasks(), key=lambda t: t.url) == tasks
    wire = LinkMessage.model_validate_json(message.model_dump_json())
    assert wire == message
