"""What every store backend shares: key rules, and backend failures turned into StoreError."""

from __future__ import annotations

import contextlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator

from shardcrawl.core.errors import StoreError, StoreUnavailable

__all__ = ["PROBE_PREFIX", "TMP_PREFIX"]

TMP_PREFIX = ".tmp-"
"""Names of in-flight temp files start with this; listings skip them, keys may not use it."""

PROBE_PREFIX = ".probe/"
"""``check_writable`` writes (and deletes) its probe object under this prefix."""


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


# --------------------------------------------------------------------------- stores


class _BaseStore(ABC):
    """Validates keys and turns backend failures into ``StoreError`` once, for all backends."""

    url: str
    _failures: tuple[type[BaseException], ...] = ()

    def put_bytes(self, key: str, data: bytes) -> None:
        _check_key(key)
        with self._translate(f"cannot write {key!r}"):
            self._write(key, bytes(data))

    def put_file(self, key: str, path: str) -> None:
        """Like ``put_bytes``, from a local file streamed rather than held in memory."""
        _check_key(key)
        with self._translate(f"cannot write {key!r}"):
            self._write_file(key, path)

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
            error = StoreUnavailable if self._passes(exc) else StoreError
            raise error(f"store {self._describe()}: {what}: {self._cause(exc)}") from exc

    def _describe(self) -> str:
        return self.url

    @abstractmethod
    def _cause(self, exc: BaseException) -> str: ...

    @abstractmethod
    def _passes(self, exc: BaseException) -> bool:
        """Whether the failure may pass by itself (an outage), rather than need an operator."""

    @abstractmethod
    def _write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _write_file(self, key: str, path: str) -> None: ...

    @abstractmethod
    def _read(self, key: str) -> bytes | None: ...

    @abstractmethod
    def _list(self, prefix: str) -> list[str]: ...

    @abstractmethod
    def _remove(self, key: str) -> None: ...
