"""The compact seen-set and the claim-check segments, without Temporal."""

from __future__ import annotations

import random
import zlib

import pytest

from shardcrawl.core import urls
from shardcrawl.core.fingerprints import FingerprintSet
from shardcrawl.models import FetchOutcome, Link, SegmentWrite, UrlTask, payload_bytes
from shardcrawl.policy.frontier import Frontier
from shardcrawl.policy.segments import (
    SEGMENT_BYTES,
    pack_batch_result,
    pack_fingerprints,
    pack_records,
    unpack_batch_result,
    unpack_records,
)


def fingerprints(n: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(64) - (1 << 63) for _ in range(n)]


def test_fingerprint_set_is_exact_across_merges() -> None:
    values = fingerprints(50_000)
    seen = FingerprintSet()
    assert all(seen.add(v) for v in values)
    assert not any(seen.add(v) for v in values[::97])
    assert len(seen) == len(set(values))
    assert all(v in seen for v in values[::13])
    assert not any(v in seen for v in fingerprints(2_000, seed=8))


def test_fingerprint_set_holds_about_eight_bytes_per_url() -> None:
    seen = FingerprintSet()
    for v in fingerprints(200_000):
        seen.add(v)
    assert seen.memory_bytes() / len(seen) < 12


def test_fingerprint_dump_round_trips_through_segments() -> None:
    seen = FingerprintSet(fingerprints(60_000))
    segments = pack_fingerprints(seen.to_bytes())
    assert len(segments) > 1 and all(len(s) <= SEGMENT_BYTES for s in segments)
    restored = FingerprintSet()
    restored.update_from_bytes(b"".join(segments))
    assert len(restored) == len(seen)
    assert all(v in restored for v in fingerprints(60_000)[::11])


def test_fingerprint_dump_rejects_torn_data() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        FingerprintSet().update_from_bytes(b"\x00" * 12)


def test_records_pack_into_payload_sized_segments() -> None:
    records = [
        [f"http://127.0.0.2/p/{i}?q={random.Random(i).random()}", i % 7] for i in range(60_000)
    ]
    segments = list(pack_records(records))
    assert len(segments) > 1
    assert all(len(s) <= SEGMENT_BYTES for s in segments)
    assert [r for s in segments for r in unpack_records(s)] == records
    # base64 in the JSON payload of a segment write stays under 256 KB.
    biggest = max(segments, key=len)
    assert payload_bytes(SegmentWrite(output="out", key="k" * 80, data=biggest)) < 256 * 1024


def test_incompressible_records_split_until_they_fit() -> None:
    rng = random.Random(3)
    records = [rng.randbytes(3_000).hex() for _ in range(200)]
    segments = list(pack_records(records))
    assert all(len(s) <= SEGMENT_BYTES for s in segments)
    assert [r for s in segments for r in unpack_records(s)] == records
    assert all(zlib.decompress(s) for s in segments)


def test_a_record_larger_than_a_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        list(pack_records(["x" * (SEGMENT_BYTES + 1)]))


def test_batch_result_round_trips_through_segments() -> None:
    outcomes = [FetchOutcome(url=f"http://a.example/{i}", status=200) for i in range(500)]
    outcomes.append(FetchOutcome(url="http://a.example/x", error="timeout"))
    links = [Link(url=f"http://a.example/l/{i}", depth=2) for i in range(20_000)]
    assert unpack_batch_result(pack_batch_result(outcomes, links)) == (outcomes, links)


def test_frontier_export_and_restore_keep_order_and_dedup() -> None:
    frontier = Frontier()
    tasks = [
        UrlTask(url=f"http://h{i % 3}.example/p/{i}", depth=i % 4, priority=i % 2)
        for i in range(300)
    ]
    for task in tasks:
        frontier.offer(task)
    taken = frontier.pop("http://h0.example", 10)
    seen, records = frontier.seen_bytes(), frontier.export()

    restored = Frontier()
    restored.restore_seen(seen)
    restored.restore_queued(records)
    assert restored.queued() == frontier.queued() == 290
    assert restored.seen_count() == 300
    assert not restored.offer(taken[0]), "a popped URL was offered again after restore"
    for origin in frontier.origins():
        assert restored.pop(origin, 1000) == frontier.pop(origin, 1000)
    assert restored.offer(UrlTask(url="http://h9.example/new"))


def test_pop_stops_at_the_url_byte_budget_but_always_takes_one() -> None:
    frontier = Frontier()
    for i in range(10):
        frontier.offer(UrlTask(url=f"http://a.example/{i}/" + "x" * 1000))
    assert len(frontier.pop("http://a.example", 10, max_url_bytes=3_500)) == 3
    assert len(frontier.pop("http://a.example", 10, max_url_bytes=10)) == 1
    assert urls.origin(frontier.pop("http://a.example", 10)[0].url) == "http://a.example"
