"""How large a workflow run has grown, and when it should continue as new. Both workflows hold
one; only the workflow APIs it calls make it workflow code."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

from shardcrawl.models import payload_bytes

__all__ = ["RunSize"]


class RunSize:
    def __init__(self, events_per_run: int) -> None:
        self.events_per_run = events_per_run
        self.events_at_start = 0
        self.largest_payload = 0

    def started(self) -> None:
        """Mark the end of loading state: the run's growth counts from here."""
        self.events_at_start = workflow.info().get_current_history_length()

    def note(self, message: BaseModel) -> None:
        """Keep the largest message sent or received, as history holds them."""
        self.largest_payload = max(self.largest_payload, payload_bytes(message))

    def carry(self, largest_payload: int) -> None:
        """Continue from the largest payload of the runs before."""
        self.largest_payload = max(self.largest_payload, largest_payload)

    def should_continue_as_new(self) -> bool:
        """Once the run grew by ``events_per_run`` events since its state was loaded (so a
        run with much state to load still does work), or from a quarter of that when the
        server suggests it."""
        info = workflow.info()
        grown = info.get_current_history_length() - self.events_at_start
        limit = self.events_per_run
        return grown >= limit or (info.is_continue_as_new_suggested() and grown >= limit // 4)
