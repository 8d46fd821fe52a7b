"""When a shard sends its status to its parent: on what the parent decides on, not every turn."""

from __future__ import annotations

__all__ = ["StatusTrigger"]


class StatusTrigger:
    def __init__(self) -> None:
        self._last: tuple[object, ...] | None = None
        self._wanted = False  # whether the shard wanted credits when it last looked

    def due(
        self,
        *,
        idle: bool,
        processed_seq: int,
        sent: dict[int, int],
        applied: dict[int, int],
        wants: int,
        returned: int,
    ) -> bool:
        """Only what the parent decides on triggers a status: a new want of credits (not how
        many: a queue that grows meanwhile sends no status; and not the want's end, as the
        parent grants again only after a status newer than its grant), credits given back,
        and idleness, with the last message applied and the link counts. Live counters are
        read by query."""
        counts = (processed_seq, tuple(sent.items()), tuple(applied.items()))
        key = (idle, counts if idle else None)
        wanting, wanted = wants > 0, self._wanted
        self._wanted = wanting
        if not returned and key == self._last and not (wanting and not wanted):
            return False
        self._last = key
        return True
