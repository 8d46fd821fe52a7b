"""The base class of shardcrawl's models, how they go on the wire, and the names on the wire
that workflows and activities share (failure classes, activity error types)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic_core import SchemaSerializer, core_schema

__all__ = [
    "BATCH_FAILED",
    "DEFERRED",
    "FORBIDDEN_ADDRESS",
    "HOST_ABANDONED",
    "NOT_FETCHED",
    "REQUEST_NOT_TRANSFERABLE",
    "ROBOTS_DISALLOWED",
    "ROBOTS_FETCH_FAILED",
    "SITEMAP_META",
    "SPIDER_START_FAILED",
    "STORE_FAILED",
    "STORE_UNAVAILABLE",
    "PageChange",
    "payload_bytes",
    "wire_json",
]

# Failure classes that shardcrawl itself decides (Scrapy's network failures are classified in
# activities/fetch_failures.py). The first three are not requests: nothing was sent.
ROBOTS_DISALLOWED = "robots_disallowed"
FORBIDDEN_ADDRESS = "forbidden_address"
NOT_FETCHED = "not_fetched"
DEFERRED = "deferred"
"""Never sent: its batch stopped at a Retry-After. Retried without counting an attempt."""
HOST_ABANDONED = "host_abandoned"
"""Never sent: its host was parked too often (see host_pressure)."""
ROBOTS_FETCH_FAILED = "robots_fetch_failed"
BATCH_FAILED = "BatchFailed"
"""Activity error types the workflows decide on. A batch that failed every attempt fails the
crawl (its URLs are never turned into failures: something is wrong with the fleet, not them)."""
STORE_UNAVAILABLE = "StoreUnavailable"
"""The store is down for now: the work goes back, and the shard waits for the store."""
REQUEST_NOT_TRANSFERABLE = "RequestNotTransferable"
"""A spider yielded a request no other worker could rebuild: the crawl fails, naming it."""
SPIDER_START_FAILED = "SpiderStartFailed"
"""Scrapy could not build or start the spider's crawler: the crawl fails, with the cause."""
SITEMAP_META = "shardcrawl_sitemap"
"""A page a sitemap listed carries the sitemap's fields in its request's meta under this key;
the batch writes them on its record (``sitemap_lastmod``, ...)."""
STORE_FAILED = "StoreFailed"
"""The store refuses for good (credentials, bucket, access): the crawl fails at once."""


PageChange = Literal["new", "changed", "unchanged", "gone"]
"""A page against the previous crawl, in an incremental one."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


_WIRE = SchemaSerializer(core_schema.any_schema())


def wire_json(value: Any) -> bytes:
    """A value as shardcrawl's data converter (shardcrawl.temporal.wire) writes it into
    history: JSON, with no field that holds its default (decoding fills those back in)."""
    return _WIRE.to_json(value, exclude_defaults=True)


def payload_bytes(value: BaseModel) -> int:
    """The size of a model as the data converter puts it in history (JSON bytes)."""
    return len(wire_json(value))
