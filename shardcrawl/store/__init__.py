"""The crawl output store: one small interface over a local directory or S3.

Crawl activities write JSONL item files and a report under deterministic keys.
Temporal retries activities, so a write must replace an earlier attempt's object
instead of adding a second one, and a reader must never see a half-written
object: the file store writes a temp file and renames it over the target, and
S3 ``put_object`` is atomic by itself.

Keys are '/'-separated paths relative to the store root (``items/0001.jsonl``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shardcrawl.core.errors import StoreError
from shardcrawl.store._base import PROBE_PREFIX, TMP_PREFIX
from shardcrawl.store._location import parse_store_url
from shardcrawl.store.file import FileStore
from shardcrawl.store.s3 import S3Store

__all__ = [
    "PROBE_PREFIX",
    "TMP_PREFIX",
    "FileStore",
    "S3Store",
    "Store",
    "StoreError",
    "normalize_store_url",
    "open_store",
]


@runtime_checkable
class Store(Protocol):
    """What crawl activities need from an output store."""

    url: str
    """Canonical root url (``file:///abs/path`` or ``s3://bucket/prefix``), never credentials."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Atomically create or replace the object at ``key``."""

    def put_file(self, key: str, path: str) -> None:
        """Atomically create or replace the object at ``key`` with a local file's content."""

    def get_bytes(self, key: str) -> bytes | None:
        """Return the object's content, or None if there is none."""

    def list_keys(self, prefix: str) -> list[str]:
        """Return all keys starting with ``prefix`` (recursive), sorted, relative to the root."""

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    def check_writable(self) -> None:
        """Fail early with a clear ``StoreError`` if objects cannot be written."""


def normalize_store_url(url: str) -> str:
    """Return the canonical store url, so a relative ``--out`` survives the trip to a worker.

    Local paths become ``file:///abs/path`` (resolved against the current directory,
    without touching the filesystem); S3 urls become ``s3://bucket/prefix`` without a
    trailing slash. Raises ValueError for anything else.
    """
    return parse_store_url(url).url


def open_store(url: str, *, s3_endpoint_url: str | None = None) -> Store:
    """Open the store named by ``url`` (see ``normalize_store_url``); nothing is cached.

    ``s3_endpoint_url`` points S3 at MinIO or moto; without it boto3's usual
    configuration applies (including ``AWS_ENDPOINT_URL_S3``).
    """
    location = parse_store_url(url)
    if location.scheme == "file":
        return FileStore(location.root)
    return S3Store(location.root, location.prefix, endpoint_url=s3_endpoint_url)
