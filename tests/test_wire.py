"""The data converter's codec: large payloads go into Temporal compressed and come back whole;
small ones, and plain JSON from the Temporal CLI, pass as they are."""

from __future__ import annotations

import asyncio
import json

from temporalio.api.common.v1 import Payload

from shardcrawl.models import BatchResult, FetchOutcome, Link
from shardcrawl.temporal.wire import COMPRESSED, data_converter


def _roundtrip(value: object) -> tuple[list[Payload], object]:
    encoded = asyncio.run(data_converter.encode([value]))
    return encoded, asyncio.run(data_converter.decode(encoded, [type(value)]))[0]


def test_a_large_payload_travels_compressed_and_comes_back_whole() -> None:
    result = BatchResult(
        batch_id="s0000-b0000001",
        outcomes=[
            FetchOutcome(url=f"http://h{i}.test/p/{i}", task=i, status=200) for i in range(200)
        ],
        links=[Link(url=f"http://h{i}.test/p/{i + 1}", depth=2) for i in range(500)],
        items_written=200,
    )
    (payload,), back = _roundtrip(result)
    assert payload.metadata["encoding"] == COMPRESSED
    assert payload.ByteSize() * 4 < len(result.model_dump_json())
    assert back == result


def test_small_payloads_and_plain_json_pass_as_they_are() -> None:
    (payload,), back = _roundtrip(FetchOutcome(url="http://a.test/", status=200))
    assert payload.metadata["encoding"] == b"json/plain"
    assert back == FetchOutcome(url="http://a.test/", status=200)
    # What `temporal workflow start --input` sends: JSON, never compressed.
    spec = {"seeds": [f"http://h{i}.test/" for i in range(100)]}
    cli = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(spec).encode())
    assert asyncio.run(data_converter.decode([cli], [dict])) == [spec]
