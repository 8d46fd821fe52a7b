"""The local-directory store: writes are a temp file in the same directory, then ``os.replace``."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from shardcrawl.store._base import TMP_PREFIX, _BaseStore

__all__ = ["FileStore"]

# A full disk or quota, an I/O hiccup, a stale network mount: these pass once someone frees
# space or the mount comes back. Permissions, a read-only or missing root do not.
_PASSING_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR}
    | {errno.ETIMEDOUT, errno.ESTALE, errno.ENOBUFS, errno.ENOMEM}
)


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

    def _passes(self, exc: BaseException) -> bool:
        return isinstance(exc, OSError) and exc.errno in _PASSING_ERRNOS

    def _write(self, key: str, data: bytes) -> None:
        self._replace(key, lambda handle: handle.write(data))

    def _write_file(self, key: str, path: str) -> None:
        def copy(handle: BinaryIO) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, handle, 1 << 20)

        self._replace(key, copy)

    def _replace(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        path = self._path(key)
        tmp = self._create_temp(path.parent)
        try:
            with open(tmp, "wb") as handle:
                fill(handle)
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
