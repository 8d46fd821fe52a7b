"""The data converter every shardcrawl client and worker uses: pydantic's JSON, less every
field that holds its default (nulls, zeros, empty lists), which decoding fills back in, and
payloads of 1 KB or more compressed with zlib (``ZlibCodec``). A batch's outcomes and links,
the bulk of a crawl's history, shrink to about a tenth (docs/benchmarks.md).

The Temporal UI and ``temporal workflow show`` then show those payloads as ``binary/zlib``
bytes, unless pointed at a codec server that runs ``decode_payload`` (README, "Payloads").
Payloads without the marker pass through decoding as they are, so ``temporal workflow start
--input`` (plain JSON) still starts crawls, and histories written before the codec replay."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import temporalio.api.common.v1
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
)

from shardcrawl.models import wire_json

__all__ = [
    "COMPRESSED",
    "CompactPayloadConverter",
    "ZlibCodec",
    "data_converter",
    "decode_payload",
    "encode_payload",
]

COMPRESSED = b"binary/zlib"
"""The encoding of a compressed payload; its data is the whole original Payload, zlib'd."""
COMPRESS_FROM_BYTES = 1024
# zlib's fastest level: a 30 KB batch result compresses to 3.5 KB in 0.09 ms; level 6 saves
# a tenth more bytes (3.1 KB) in 0.23 ms.
ZLIB_LEVEL = 1


class _CompactJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    def to_payload(self, value: Any) -> temporalio.api.common.v1.Payload | None:
        return temporalio.api.common.v1.Payload(
            metadata={"encoding": self.encoding.encode()},
            data=wire_json(value),
        )


class CompactPayloadConverter(CompositePayloadConverter):
    """Temporal's default converters, with JSON written by ``_CompactJSONPayloadConverter``."""

    def __init__(self) -> None:
        compact = _CompactJSONPayloadConverter()
        super().__init__(
            *(
                compact if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


def encode_payload(payload: temporalio.api.common.v1.Payload) -> temporalio.api.common.v1.Payload:
    """A payload of COMPRESS_FROM_BYTES or more, compressed if that makes it smaller."""
    raw = payload.SerializeToString()
    if len(raw) < COMPRESS_FROM_BYTES:
        return payload
    packed = zlib.compress(raw, ZLIB_LEVEL)
    if len(packed) >= len(raw):
        return payload
    return temporalio.api.common.v1.Payload(metadata={"encoding": COMPRESSED}, data=packed)


def decode_payload(payload: temporalio.api.common.v1.Payload) -> temporalio.api.common.v1.Payload:
    """The original of a compressed payload; any other payload as it is."""
    if payload.metadata.get("encoding") != COMPRESSED:
        return payload
    return temporalio.api.common.v1.Payload.FromString(zlib.decompress(payload.data))


class ZlibCodec(PayloadCodec):
    """Compresses large payloads on the way into Temporal, on every client and worker."""

    async def encode(
        self, payloads: Sequence[temporalio.api.common.v1.Payload]
    ) -> list[temporalio.api.common.v1.Payload]:
        return [encode_payload(p) for p in payloads]

    async def decode(
        self, payloads: Sequence[temporalio.api.common.v1.Payload]
    ) -> list[temporalio.api.common.v1.Payload]:
        return [decode_payload(p) for p in payloads]


data_converter = DataConverter(
    payload_converter_class=CompactPayloadConverter, payload_codec=ZlibCodec()
)
