"""One timer that wakes the shard at its engine's next wake-up, kept while that moment holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

__all__ = ["WakeAlarm"]


class WakeAlarm:
    """``ring`` is called when the alarm goes off."""

    def __init__(self, ring: Callable[[], None]) -> None:
        self._ring_callback = ring
        # The deadline (workflow time) and the task sleeping until then.
        self._alarm: tuple[float, asyncio.Task[None]] | None = None

    def arm(self, wake: timedelta | None) -> None:
        """Set the alarm for ``wake`` from now (None: no alarm). An alarm already set for
        the same moment is kept: the loop wakes many times (batches landing) while the
        engine waits for one moment (the links' deadline, a rest), and each new timer would
        be two more events and a timer task on the server."""
        deadline = None if wake is None else workflow.now().timestamp() + wake.total_seconds()
        if self._alarm is not None:
            at, task = self._alarm
            if not task.done() and deadline is not None and abs(at - deadline) < 0.001:
                return
            task.cancel()
            self._alarm = None
        if deadline is not None and wake is not None:
            self._alarm = (deadline, asyncio.create_task(self._ring(wake)))

    async def _ring(self, wake: timedelta) -> None:
        await workflow.sleep(wake)
        self._ring_callback()
