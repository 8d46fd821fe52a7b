"""The crawl's fetch options, read once per worker: activity inputs name them by digest
(``FetchOptions.digest``) instead of carrying them, so history holds them once per crawl."""

from __future__ import annotations

from typing import TypeVar

from temporalio.exceptions import ApplicationError

from shardcrawl.activities.lru import Lru
from shardcrawl.activities.stores import StoreCache
from shardcrawl.core import layout
from shardcrawl.models import (
    STORE_FAILED,
    BatchRequest,
    FetchOptions,
    RobotsRequest,
    SitemapRequest,
)

__all__ = ["SharedFetchOptions"]

# Crawls a worker serves at once, with room to spare: each entry is a few hundred bytes.
CACHED_OPTIONS = 256

R = TypeVar("R", BatchRequest, RobotsRequest, SitemapRequest)


class SharedFetchOptions:
    def __init__(self, stores: StoreCache) -> None:
        self._stores = stores
        self._cache: Lru[str, FetchOptions] = Lru(CACHED_OPTIONS)

    async def resolve(self, request: R) -> R:
        """The request with its fetch options in place: from this worker's cache, else
        from the crawl's store (by content, so a cached entry is never stale)."""
        digest = request.fetch_digest
        if not digest:
            return request  # from a shard of an earlier version: inline
        options = self._cache.get(digest)
        if options is None:
            key = layout.fetch_options_key(request.crawl_id, digest)
            data = await self._stores.get_bytes(request.output, key)
            if data is None:
                raise ApplicationError(
                    f"the crawl's fetch options {key} are not in its store {request.output}",
                    type=STORE_FAILED,
                    non_retryable=True,
                )
            options = FetchOptions.model_validate_json(data)
            self._cache.put(digest, options)
        return request.model_copy(update={"fetch": options})
