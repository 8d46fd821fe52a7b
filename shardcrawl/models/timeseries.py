"""A crawl's history over time, recorded by the shards as their batches land.

Each shard keeps a ``SeriesRecorder``: counters per time bucket, and the queue's depth. Buckets
are ``BUCKET_SECONDS`` wide and aligned to multiples of their width in epoch time. A series
never holds more than ``MAX_BUCKETS``: when it would span more, its buckets merge in pairs
and the width doubles, so the first hour is in 10 s buckets, the first two hours in 20 s, and
a day in about 5 minutes. Widths are 10 s times a power of two on one grid, so any two series
merge (the finer one coarsens to the other's width) and the crawl's series is bounded too.

``recent_pages`` is separate and smaller: the pages of the last minute, per 10 s, kept in the
shard's totals so that ``status`` can show the rate of the last minute.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BUCKET_SECONDS",
    "COUNTERS",
    "GAUGES",
    "MAX_BUCKETS",
    "RECENT_SECONDS",
    "SeriesRecorder",
    "TimeSeries",
    "merge_series",
    "note_recent",
    "recent_rate",
]

BUCKET_SECONDS = 10
MAX_BUCKETS = 360
RECENT_SECONDS = 60
COUNTERS = (
    "requests",
    "pages",
    "failures",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "blocked",
    "retries",
)
"""Summed in a bucket, and when buckets or shards merge."""
GAUGES = ("queued",)
"""The largest value seen in a bucket; shards' values add up, merged buckets keep the max."""
FIELDS = COUNTERS + GAUGES


class TimeSeries(BaseModel):
    """Buckets ``start`` .. ``start + count - 1`` of ``bucket_seconds`` each (bucket ``i``
    begins at epoch second ``i * bucket_seconds``), one list per field. Compact on the wire:
    a list stops at its last non-zero value; what is past its end is 0."""

    model_config = ConfigDict(extra="forbid")

    bucket_seconds: int = BUCKET_SECONDS
    start: int = 0
    count: int = 0
    requests: list[int] = Field(default_factory=list, description="attempts, retries included")
    pages: list[int] = Field(default_factory=list, description="URLs ended with a response")
    failures: list[int] = Field(default_factory=list, description="URLs ended without one")
    status_2xx: list[int] = Field(default_factory=list)
    status_3xx: list[int] = Field(default_factory=list)
    status_4xx: list[int] = Field(default_factory=list)
    status_5xx: list[int] = Field(default_factory=list)
    blocked: list[int] = Field(default_factory=list)
    retries: list[int] = Field(default_factory=list, description="attempts after a URL's first")
    queued: list[int] = Field(default_factory=list, description="largest frontier seen")

    def column(self, name: str) -> list[int]:
        """One field for every bucket, zeros filled in."""
        values: list[int] = getattr(self, name)
        return values + [0] * (self.count - len(values))

    def times(self) -> list[int]:
        """Each bucket's start, in epoch seconds."""
        return [(self.start + i) * self.bucket_seconds for i in range(self.count)]


def _trimmed(values: list[int]) -> list[int]:
    end = len(values)
    while end and not values[end - 1]:
        end -= 1
    return values[:end]


class SeriesRecorder:
    """The series a shard is recording: buckets by index, bounded by coarsening."""

    def __init__(self, *, max_buckets: int = MAX_BUCKETS) -> None:
        self.max_buckets = max_buckets
        self.width = BUCKET_SECONDS
        self._rows: dict[int, list[int]] = {}

    def row(self, now: float) -> list[int]:
        """The bucket holding time ``now``, made if new (which may coarsen the series)."""
        index = int(now // self.width)
        row = self._rows.get(index)
        if row is None:
            self._rows[index] = row = [0] * len(FIELDS)
            if max(self._rows) - min(self._rows) >= self.max_buckets:
                self._coarsen()
                row = self._rows[int(now // self.width)]
        return row

    def add(self, now: float, **counts: int) -> None:
        row = self.row(now)
        for name, value in counts.items():
            row[FIELDS.index(name)] += value

    def gauge(self, now: float, name: str, value: int) -> None:
        row = self.row(now)
        i = FIELDS.index(name)
        row[i] = max(row[i], value)

    def _coarsen(self) -> None:
        while self._rows and max(self._rows) - min(self._rows) >= self.max_buckets:
            self.width *= 2
            self._rows = _halved(self._rows)

    def export(self) -> TimeSeries:
        return _to_series(self._rows, self.width)

    def load(self, series: TimeSeries) -> None:
        """Continue a series from a checkpoint."""
        self.width = series.bucket_seconds
        self._rows = _from_series(series)


def _halved(rows: dict[int, list[int]]) -> dict[int, list[int]]:
    merged: dict[int, list[int]] = {}
    for index, row in rows.items():
        into = merged.setdefault(index // 2, [0] * len(FIELDS))
        _fold(into, row, gauges_add=False)
    return merged


def _fold(into: list[int], row: list[int], *, gauges_add: bool) -> None:
    for i, value in enumerate(row):
        if i < len(COUNTERS) or gauges_add:
            into[i] += value
        else:
            into[i] = max(into[i], value)


def _from_series(series: TimeSeries) -> dict[int, list[int]]:
    columns = [series.column(name) for name in FIELDS]
    return {
        series.start + i: [column[i] for column in columns]
        for i in range(series.count)
        if any(column[i] for column in columns)
    }


def _to_series(rows: dict[int, list[int]], width: int) -> TimeSeries:
    if not rows:
        return TimeSeries(bucket_seconds=width)
    start, end = min(rows), max(rows) + 1
    empty = [0] * len(FIELDS)
    columns = {
        name: _trimmed([rows.get(index, empty)[i] for index in range(start, end)])
        for i, name in enumerate(FIELDS)
    }
    return TimeSeries(bucket_seconds=width, start=start, count=end - start, **columns)


def merge_series(parts: list[TimeSeries], *, max_buckets: int = MAX_BUCKETS) -> TimeSeries:
    """The crawl's series from its shards': on the widest grid, counters and gauges added up
    bucket by bucket (the shards' queues add up), then coarsened to ``max_buckets``."""
    parts = [p for p in parts if p.count]
    if not parts:
        return TimeSeries()
    width = max(p.bucket_seconds for p in parts)
    rows: dict[int, list[int]] = {}
    for part in parts:
        factor = width // part.bucket_seconds
        coarse: dict[int, list[int]] = {}
        for index, row in _from_series(part).items():
            _fold(coarse.setdefault(index // factor, [0] * len(FIELDS)), row, gauges_add=False)
        for index, row in coarse.items():
            _fold(rows.setdefault(index, [0] * len(FIELDS)), row, gauges_add=True)
    while max(rows) - min(rows) >= max_buckets:
        width *= 2
        rows = _halved(rows)
    return _to_series(rows, width)


def note_recent(recent: dict[str, int], now: float, pages: int) -> None:
    """Count ``pages`` in their 10 s slot (key: epoch seconds // 10) and drop slots older than
    a minute, so the dict holds at most 7 entries."""
    slot = int(now // BUCKET_SECONDS)
    key = str(slot)
    recent[key] = recent.get(key, 0) + pages
    oldest = slot - RECENT_SECONDS // BUCKET_SECONDS
    for stale in [k for k in recent if int(k) < oldest]:
        del recent[stale]


def recent_rate(recent: dict[str, int], now: float, *, elapsed_seconds: float) -> float:
    """Pages per second over the last minute (over the crawl's age, if it is younger): the
    slots that began in the last minute, over the time since the first of them began."""
    first = int(now // BUCKET_SECONDS) - RECENT_SECONDS // BUCKET_SECONDS + 1
    pages = sum(v for k, v in recent.items() if int(k) >= first)
    window = min(now - first * BUCKET_SECONDS, max(elapsed_seconds, 1e-9))
    return pages / window if window > 0 else 0.0
