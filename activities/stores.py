"""Stores opened once per URL per worker, and blocking store calls kept off the event loop."""

from __future__ import annotations

import asyncio

from shardcrawl.store import Store, open_store

__all__ = ["StoreCache"]


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
        await asyncio.to_thread(self.get(url).put_bytes, key, data)

    async def get_bytes(self, url: str, key: str) -> bytes | None:
        return await asyncio.to_thread(self.get(url).get_bytes, key)

    async def list_keys(self, url: str, prefix: str) -> list[str]:
        return await asyncio.to_thread(self.get(url).list_keys, prefix)

    async def delete_prefix(self, url: str, prefix: str) -> int:
        """Delete every object under ``prefix``; idempotent. Returns how many there were."""
        store = self.get(url)
        keys = await self.list_keys(url, prefix)
        for key in keys:
            await asyncio.to_thread(store.delete, key)
        return len(keys)
