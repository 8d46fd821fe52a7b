"""Workers read a crawl's fetch options from its store once, by digest, and cache them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from shardcrawl.activities.fetch_options import SharedFetchOptions
from shardcrawl.activities.stores import StoreCache
from shardcrawl.core import layout
from shardcrawl.models import STORE_FAILED, FetchOptions, RobotsRequest, RobotsTarget


def _request(out: Path, digest: str) -> RobotsRequest:
    return RobotsRequest(
        crawl_id="c1",
        origins=[RobotsTarget(origin="http://a.test")],
        output=str(out),
        fetch_digest=digest,
    )


def _store(out: Path, options: FetchOptions) -> str:
    digest = options.digest()
    path = out / layout.fetch_options_key("c1", digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(options.model_dump_json())
    return digest


def test_options_are_read_once_and_named_by_content(tmp_path: Path) -> None:
    shared = SharedFetchOptions(StoreCache())
    first = FetchOptions(user_agent="bot/1", allow_private_networks=True)
    digest = _store(tmp_path, first)
    assert asyncio.run(shared.resolve(_request(tmp_path, digest))).fetch == first
    # Cached: a worker asks its store once per crawl's options, not once per batch.
    (tmp_path / layout.fetch_options_key("c1", digest)).unlink()
    assert asyncio.run(shared.resolve(_request(tmp_path, digest))).fetch == first
    # A changed spec under the same crawl id has another digest, so nothing stale is used.
    changed = first.model_copy(update={"user_agent": "bot/2"})
    assert changed.digest() != digest
    resolved = asyncio.run(shared.resolve(_request(tmp_path, _store(tmp_path, changed))))
    assert resolved.fetch.user_agent == "bot/2"


def test_missing_options_fail_the_activity_for_good(tmp_path: Path) -> None:
    shared = SharedFetchOptions(StoreCache())
    with pytest.raises(ApplicationError) as caught:
        asyncio.run(shared.resolve(_request(tmp_path, FetchOptions().digest())))
    assert caught.value.type == STORE_FAILED and caught.value.non_retryable


def test_inline_options_pass_through(tmp_path: Path) -> None:
    inline = FetchOptions(user_agent="bot/3")
    request = _request(tmp_path, "").model_copy(update={"fetch": inline})
    assert asyncio.run(SharedFetchOptions(StoreCache()).resolve(request)).fetch == inline
