"""A compact set of 64-bit URL fingerprints: the shard's seen-set, about 8 bytes per URL.

A Python ``set`` of ints costs ~60 bytes per entry; a shard that has seen a few hundred thousand
URLs would hold tens of MB in every worker that caches it. Here most fingerprints live in one
sorted ``array("q")`` searched by bisection, and only the newest sit in a small ``set`` that is
merged into the array once it grows past a fixed share of it. 64-bit fingerprints collide with
probability ~n^2/2^65 (about 3e-8 for a million URLs per shard), so no URL is silently dropped in
practice, and the set is exact otherwise (no Bloom-filter false positives).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from itertools import chain

__all__ = ["FINGERPRINT_BYTES", "FingerprintSet"]

FINGERPRINT_BYTES = 8
# The unmerged tail holds at most 1/MERGE_SHARE of the entries (and at least MIN_TAIL), so the
# set stays near 8 bytes per URL, and merging costs O(1) amortized copies per insert.
MERGE_SHARE = 16
MIN_TAIL = 4096


class FingerprintSet:
    """Exact membership over signed 64-bit ints, in ~8 bytes each."""

    def __init__(self, fingerprints: Iterable[int] = ()) -> None:
        self._sorted = array("q", sorted(set(fingerprints)))
        self._tail: set[int] = set()

    def add(self, fp: int) -> bool:
        """Add ``fp``; False if it was already there."""
        if fp in self:
            return False
        self._tail.add(fp)
        if len(self._tail) > max(MIN_TAIL, len(self._sorted) // MERGE_SHARE):
            self._merge()
        return True

    def __contains__(self, fp: object) -> bool:
        if fp in self._tail:
            return True
        arr = self._sorted
        i = bisect_left(arr, fp)  # type: ignore[call-overload]
        return i < len(arr) and arr[i] == fp

    def __len__(self) -> int:
        return len(self._sorted) + len(self._tail)

    def _merge(self) -> None:
        self._sorted = array("q", sorted(chain(self._sorted, self._tail)))
        self._tail = set()

    def to_bytes(self) -> bytes:
        """Sorted little-endian int64s: the same bytes for the same set on any machine."""
        self._merge()
        out = array("q", self._sorted)
        if sys.byteorder != "little":
            out.byteswap()
        return out.tobytes()

    def update_from_bytes(self, data: bytes) -> None:
        """Add the fingerprints of a ``to_bytes`` dump (or a slice of one at 8-byte bounds)."""
        if len(data) % FINGERPRINT_BYTES:
            raise ValueError(f"fingerprint data of {len(data)} bytes is not a multiple of 8")
        more = array("q")
        more.frombytes(data)
        if sys.byteorder != "little":
            more.byteswap()
        self._tail.update(more)
        self._merge()

    def memory_bytes(self) -> int:
        """Roughly what the set holds in memory (array buffer plus the tail's entries)."""
        return self._sorted.buffer_info()[1] * self._sorted.itemsize + sys.getsizeof(self._tail)
