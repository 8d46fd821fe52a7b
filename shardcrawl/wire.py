"""The data converter every shardcrawl client and worker uses: pydantic's JSON, less every
field that holds its default (nulls, zeros, empty lists), which decoding fills back in. A
batch's outcomes and links, the bulk of a crawl's history, shrink to about half."""

from __future__ import annotations

from typing import Any

import temporalio.api.common.v1
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

from shardcrawl.contracts import wire_json

__all__ = ["CompactPayloadConverter", "data_converter"]


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


data_converter = DataConverter(payload_converter_class=CompactPayloadConverter)
