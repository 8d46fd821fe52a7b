"""Stores opened once per URL per worker, and blocking store calls kept off the event loop.

Every store call an activity makes goes through ``StoreCache``, which turns the store's
failures into what the workflows decide on:

- ``StoreUnavailable`` (refused, timed out, 5xx, throttled, disk full) becomes a retryable
  ``ApplicationError`` of type ``STORE_UNAVAILABLE``: the shard puts the work back and waits
  for the store, so an outage costs time, never pages;
- any other ``StoreError`` (credentials, missing bucket, access denied) becomes a
  non-retryable ``STORE_FAILED``, which fails the crawl at once with the store's own message.

While a call blocks (a frozen endpoint answers only when boto3's timeouts run out), the
activity keeps heartbeating, so Temporal does not take a slow store for a dead worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from shardcrawl.core.errors import StoreError, StoreUnavailable
from shardcrawl.models import STORE_FAILED, STORE_UNAVAILABLE
from shardcrawl.store import Store, open_store

__all__ = ["StoreCache", "store_failure"]

T = TypeVar("T")
HEARTBEAT_EVERY_SECONDS = 2.0


def store_failure(exc: StoreError) -> ApplicationError:
    """The activity error for a store failure: retryable only if it may pass."""
    if isinstance(exc, StoreUnavailable):
        return ApplicationError(str(exc), type=STORE_UNAVAILABLE)
    return ApplicationError(str(exc), type=STORE_FAILED, non_retryable=True)


class StoreCache:
    """Opens each output store once; boto3 clients are costly to build per batch."""

    def __init__(self, *, s3_endpoint_url: str | None = None) -> None:
        self._s3_endpoint_url = s3_endpoint_url
        self._stores: dict[str, Store] = {}

    def get(self, url: str) -> Store:
        store = self._stores.get(url)
        if store is None:
            store = open_store(url, s3_endpoint_url=self._s3_endpoint_url)
            self._stores[url] = store
        return store

    async def put(self, url: str, key: str, data: bytes) -> None:
        await self._call(self.get(url).put_bytes, key, data)

    async def put_file(self, url: str, key: str, path: str) -> None:
        await self._call(self.get(url).put_file, key, path)

    async def get_bytes(self, url: str, key: str) -> bytes | None:
        return await self._call(self.get(url).get_bytes, key)

    async def list_keys(self, url: str, prefix: str) -> list[str]:
        return await self._call(self.get(url).list_keys, prefix)

    async def check_writable(self, url: str) -> None:
        await self._call(self.get(url).check_writable)

    async def delete_prefix(self, url: str, prefix: str) -> int:
        """Delete every object under ``prefix``; idempotent. Returns how many there were."""
        store = self.get(url)
        keys = await self.list_keys(url, prefix)
        for key in keys:
            await self._call(store.delete, key)
        return len(keys)

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        call = asyncio.ensure_future(asyncio.to_thread(function, *args))
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=HEARTBEAT_EVERY_SECONDS)
                if done:
                    return call.result()
                if activity.in_activity():
                    activity.heartbeat()
        except StoreError as exc:
            if not activity.in_activity():
                raise
            raise store_failure(exc) from exc
