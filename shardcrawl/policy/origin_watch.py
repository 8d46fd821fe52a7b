"""Which origins a shard's next dispatch pass looks at, so that a pass costs what changed, not
the number of hosts the shard owns (10,000 hosts in one shard must not slow dispatch).

An origin is looked at when something happened to it (new work, its batch landed, its
robots.txt came), when a wait of its own ended (a rest, a retry's backoff, a park), or when
what held it back for the whole shard changed (page credits arrived). A pass that looks at an
origin and does not dispatch it says why: the origin then waits for that event or time. An
origin held back by the shard's capacity (batches in flight, the retry budget, proxy slots)
stays due and is looked at again by the next pass.

Plain and deterministic; the shard rebuilds it from its frontier after continue-as-new.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

__all__ = ["OriginWatch"]


class OriginWatch:
    def __init__(self) -> None:
        self._due: dict[str, None] = {}
        self._timers: list[tuple[float, str]] = []
        self._credits: dict[str, None] = {}

    def touch(self, origin: str) -> None:
        """Something happened to the origin: the next pass looks at it."""
        self._due[origin] = None

    def touch_all(self, origins: Iterable[str]) -> None:
        """What a set of origins waited for happened (their host's batch landed, its
        sitemaps were read, a proxy grant or a fleet's slot came): the next pass looks."""
        self._due.update(dict.fromkeys(origins))

    def wake_at(self, origin: str, at: float) -> None:
        """The origin waits for a time of its own (a rest, a backoff, a park)."""
        heapq.heappush(self._timers, (at, origin))

    def wait_for_credits(self, origin: str) -> None:
        self._credits[origin] = None

    def credits_arrived(self) -> None:
        """Page credits came: every origin that waited for them is due."""
        self._due.update(self._credits)
        self._credits.clear()

    def take(self, now: float) -> list[str]:
        """The origins the pass at ``now`` looks at (each once); they are no longer due."""
        while self._timers and self._timers[0][0] <= now:
            self._due[heapq.heappop(self._timers)[1]] = None
        due = list(self._due)
        self._due.clear()
        return due

    def next_time(self) -> float | None:
        """The earliest wait that ends, if any (some may be for origins due already)."""
        return self._timers[0][0] if self._timers else None

    def __len__(self) -> int:
        return len(self._due)
