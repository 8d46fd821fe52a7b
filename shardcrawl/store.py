"""The crawl output store: one small interface over a local directory or S3.

Crawl activities write JSONL item files and a report under deterministic keys.
Temporal retries activities, so a write must replace an earlier attempt's object
instead of adding a second one, and a reader must never see a half-written
object: the file store writes a temp file and renames it over the target, and
S3 ``put_object`` is atomic by itself.

Keys are '/'-separated paths relative to the store root (``items/0001.jsonl``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

from shardcrawl.errors import StoreError

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

TMP_PREFIX = ".tmp-"
"""Names of in-flight temp files start with this; listings skip them, keys may not use it."""

PROBE_PREFIX = ".probe/"
"""``check_writable`` writes (and deletes) its probe object under this prefix."""

_URL_HINT = "use file://PATH, a directory path or s3://BUCKET/PREFIX"
_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_CLIENT_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30
)


@runtime_checkable
class Store(Protocol):
    """What crawl activities need from an output store."""

    url: str
    """Canonical root url (``file:///abs/path`` or ``s3://bucket/prefix``), never credentials."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Atomically create or replace the object at ``key``."""

    def get_bytes(self, key: str) -> bytes | None:
        """Return the object's content, or None if there is none."""

    def list_keys(self, prefix: str) -> list[str]:
        """Return all keys starting with ``prefix`` (recursive), sorted, relative to the root."""

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    def check_writable(self) -> None:
        """Fail early with a clear ``StoreError`` if objects cannot be written."""


# --------------------------------------------------------------------------- keys


def _check_key(key: str, *, kind: str = "key") -> str:
    """Reject keys that could escape the root or collide with temp files."""
    problem = _key_problem(key)
    if problem:
        raise ValueError(f"invalid store {kind} {key!r}: {problem}")
    return key


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    if key.startswith("/"):
        return "must be relative, not absolute"
    if "\\" in key or "\x00" in key:
        return "must not contain backslashes or NUL characters"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return "must not contain empty, '.' or '..' path segments"
        if segment.startswith(TMP_PREFIX):
            return f"segments starting with {TMP_PREFIX!r} are reserved for in-flight writes"
    return None


def _check_prefix(prefix: str) -> str:
    """Validate a listing prefix: '' lists everything, a trailing '/' is allowed."""
    if prefix == "":
        return prefix
    body = prefix[:-1] if prefix.endswith("/") else prefix
    _check_key(body, kind="prefix")
    return prefix


# --------------------------------------------------------------------------- urls


@dataclass(frozen=True)
class _Location:
    """A parsed store url: a local directory, or a bucket plus key prefix."""

    scheme: str
    root: str
    prefix: str = ""

    @property
    def url(self) -> str:
        if self.scheme == "file":
            return Path(self.root).as_uri()
        return f"s3://{self.root}/{self.prefix}" if self.prefix else f"s3://{self.root}"


def _redact_url(url: str) -> str:
    """Drop any ``user:password@`` part so error messages never echo credentials."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if sep and "@" in netloc:
        return f"{scheme}://***@{netloc.rsplit('@', 1)[1]}{slash}{path}"
    return url


def _parse_store_url(url: str) -> _Location:
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"store url is empty: {_URL_HINT}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "":
        return _local_location(url)
    if scheme == "file":
        return _local_location(_file_url_path(url))
    if scheme == "s3":
        return _s3_location(url)
    raise ValueError(f"unsupported store url {_redact_url(url)!r}: {_URL_HINT}")


def _local_location(path: str) -> _Location:
    return _Location("file", os.path.abspath(os.path.expanduser(path)))


def _file_url_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"file url {_redact_url(url)!r} names host {parts.netloc!r}: "
            "use file:///ABS/PATH or a plain directory path"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"file url {url!r} has a query or fragment: percent-encode '?' and '#'")
    if not parts.path:
        raise ValueError(f"file url {url!r} has no path: {_URL_HINT}")
    return unquote(parts.path)


def _s3_location(url: str) -> _Location:
    """Split ``s3://bucket/prefix`` literally: S3 keys may contain '?' and '#'."""
    if url[:5].lower() != "s3://":
        raise ValueError(f"malformed s3 url {_redact_url(url)!r}: {_URL_HINT}")
    bucket, _, prefix = url[5:].partition("/")
    return _Location("s3", _check_bucket(bucket), _normalize_prefix(prefix))


def _check_bucket(bucket: str) -> str:
    if "@" in bucket:
        raise ValueError(
            "s3 store url must not contain credentials: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or an AWS profile) instead"
        )
    if not _BUCKET_RE.fullmatch(bucket):
        raise ValueError(f"invalid s3 bucket name {bucket!r}: {_URL_HINT}")
    return bucket


def _normalize_prefix(prefix: str) -> str:
    """Collapse empty segments and strip slashes; reject '.' and '..'."""
    segments = [segment for segment in prefix.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise ValueError(f"invalid s3 key prefix {prefix!r}: '.' and '..' segments are not allowed")
    return "/".join(segments)


def normalize_store_url(url: str) -> str:
    """Return the canonical store url, so a relative ``--out`` survives the trip to a worker.

    Local paths become ``file:///abs/path`` (resolved against the current directory,
    without touching the filesystem); S3 urls become ``s3://bucket/prefix`` without a
    trailing slash. Raises ValueError for anything else.
    """
    return _parse_store_url(url).url


def open_store(url: str, *, s3_endpoint_url: str | None = None) -> Store:
    """Open the store named by ``url`` (see ``normalize_store_url``); nothing is cached.

    ``s3_endpoint_url`` points S3 at MinIO or moto; without it boto3's usual
    configuration applies (including ``AWS_ENDPOINT_URL_S3``).
    """
    location = _parse_store_url(url)
    if location.scheme == "file":
        return FileStore(location.root)
    return S3Store(location.root, location.prefix, endpoint_url=s3_endpoint_url)


# --------------------------------------------------------------------------- stores


class _BaseStore(ABC):
    """Validates keys and turns backend failures into ``StoreError`` once, for all backends."""

    url: str
    _failures: tuple[type[BaseException], ...] = ()

    def put_bytes(self, key: str, data: bytes) -> None:
        _check_key(key)
        with self._translate(f"cannot write {key!r}"):
            self._write(key, bytes(data))

    def get_bytes(self, key: str) -> bytes | None:
        _check_key(key)
        with self._translate(f"cannot read {key!r}"):
            return self._read(key)

    def list_keys(self, prefix: str) -> list[str]:
        _check_prefix(prefix)
        with self._translate(f"cannot list keys under {prefix!r}"):
            return sorted(self._list(prefix))

    def delete(self, key: str) -> None:
        _check_key(key)
        with self._translate(f"cannot delete {key!r}"):
            self._remove(key)

    def check_writable(self) -> None:
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        with self._translate("not writable"):
            self._write(key, b"shardcrawl write probe\n")
            self._remove(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._failures as exc:
            raise StoreError(f"store {self._describe()}: {what}: {self._cause(exc)}") from exc

    def _describe(self) -> str:
        return self.url

    @abstractmethod
    def _cause(self, exc: BaseException) -> str: ...

    @abstractmethod
    def _write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _read(self, key: str) -> bytes | None: ...

    @abstractmethod
    def _list(self, prefix: str) -> list[str]: ...

    @abstractmethod
    def _remove(self, key: str) -> None: ...


class FileStore(_BaseStore):
    """A local (or network-mounted) directory; writes are temp file + ``os.replace``."""

    _failures = (OSError,)

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
        self.url = self.root.as_uri()
        self._fsync = fsync

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _cause(self, exc: BaseException) -> str:
        return str(exc)

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._create_temp(path.parent)
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                if self._fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self._fsync:
            _fsync_dir(path.parent)

    def _create_temp(self, directory: Path) -> Path:
        """Create an empty temp file next to the target, with normal (umask) permissions.

        Retries because a concurrent ``delete`` may prune the freshly made directory.
        """
        for attempt in range(3):
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / f"{TMP_PREFIX}{secrets.token_hex(8)}"
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return tmp
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def _list(self, prefix: str) -> list[str]:
        base_dir = prefix.rpartition("/")[0]
        base = self._path(base_dir) if base_dir else self.root
        if not base.is_dir():
            return []
        return [key for key in self._walk(base) if key.startswith(prefix)]

    def _walk(self, base: Path) -> Iterator[str]:
        for dirpath, _dirnames, filenames in os.walk(base, onerror=_raise):
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if not name.startswith(TMP_PREFIX):
                    yield name if relative == "." else f"{relative}/{name}"

    def _remove(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._prune_empty_dirs(path.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        """Drop directories emptied by a delete, as S3 prefixes vanish with their last object."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself; best effort, some filesystems refuse directory fsync."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _raise(exc: OSError) -> None:
    """``os.walk`` hides errors by default; a store listing must not silently miss keys."""
    raise exc


class S3Store(_BaseStore):
    """An S3 bucket (or MinIO / moto) with an optional key prefix.

    Credentials come from the standard boto3 chain (environment, profile, instance
    role); they never appear in ``url`` or error messages.
    """

    _failures = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self.bucket = _check_bucket(bucket)
        self.prefix = _normalize_prefix(prefix)
        self.url = _Location("s3", self.bucket, self.prefix).url
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use so constructing a store is free."""
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        config = _CLIENT_CONFIG
        if self.endpoint_url:
            # MinIO and moto have no bucket subdomains; botocore's "auto" already picks
            # path style here, pinning it keeps a profile or future default from flipping it.
            config = config.merge(Config(s3={"addressing_style": "path"}))
        session = boto3.session.Session(region_name=self.region_name)
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _describe(self) -> str:
        if self.endpoint_url:
            return f"{self.url} (endpoint {_redact_url(self.endpoint_url)})"
        return self.url

    def _cause(self, exc: BaseException) -> str:
        return _redact_secrets(_s3_cause(exc, self.bucket))

    def _write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def _read(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        return response["Body"].read()

    def _list(self, prefix: str) -> list[str]:
        root = self._key("")
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=root + prefix)
        return [item["Key"][len(root) :] for page in pages for item in page.get("Contents", [])]

    def _remove(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


_CREDENTIAL_ERRORS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
)
_CONNECTION_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
)


def _s3_cause(exc: BaseException, bucket: str) -> str:
    """Explain the common S3 failures in words an operator can act on."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = _error_code(exc)
        if code == "NoSuchBucket":
            return f"bucket {bucket!r} does not exist"
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return f"access to bucket {bucket!r} denied ({code}): check credentials and policy"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"the AWS credentials were rejected ({code})"
        return f"{code or 'error'}: {exc.response.get('Error', {}).get('Message', exc)}"
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return (
            "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "or configure an AWS profile"
        )
    if isinstance(exc, _CONNECTION_ERRORS):
        return f"cannot reach the S3 endpoint: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _redact_secrets(message: str) -> str:
    """Belt and braces: never let a secret from the environment reach a log line."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            message = message.replace(secret, "***")
    return message
