"""The shard's activity tasks in flight, whose first failure is kept for the main loop to raise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow

__all__ = ["InFlight"]


class InFlight:
    """``on_done`` is called whenever a task ends."""

    def __init__(self, on_done: Callable[[], None]) -> None:
        self._on_done = on_done
        # In start order (a dict: a set's order could differ on replay).
        self._tasks: dict[asyncio.Task[None], None] = {}
        self.failure: BaseException | None = None

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks[task] = None
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()
        self._on_done()

    async def land(self, grace: timedelta | None) -> None:
        """Let the tasks finish; after ``grace`` (None: no limit), cut them off."""
        try:
            await workflow.wait_condition(lambda: not self._tasks, timeout=grace)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await workflow.wait_condition(lambda: not self._tasks)
