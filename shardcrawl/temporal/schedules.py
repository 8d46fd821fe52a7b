"""Recurring crawls on Temporal Schedules: the server starts each run, so there is no cron to
keep alive, and the overlap policy decides what happens when a run is still going.

A schedule named NAME starts ``CrawlWorkflow`` with workflow id NAME; Temporal appends the
scheduled time, so each run has its own crawl id (``NAME-2026-11-26T08:00:00Z``) and so its own
output folder, written without colons (``OUT/NAME-20261126-080000/``, see
``layout.crawl_folder``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from shardcrawl.core.errors import ScheduleError
from shardcrawl.models import CrawlSpec
from shardcrawl.policy.visibility import crawl_details, crawl_summary
from shardcrawl.temporal.wire import decode_payload

__all__ = [
    "OVERLAP_POLICIES",
    "CrawlSchedules",
    "ScheduleSummary",
    "ScheduledRun",
    "calendar_cron",
    "every_text",
    "parse_every",
]

OVERLAP_POLICIES = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
T = TypeVar("T")
WHEN_MEMO = "shardcrawl_when"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_DURATION = re.compile(r"(\d+)\s*(s|m|h|d)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_every(text: str) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``1d`` or sums such as ``1h30m``."""
    compact = text.replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ScheduleError(f"--every {text!r}: write a duration such as 90s, 15m, 6h or 1d")
    every = timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))
    if every < timedelta(seconds=1):
        raise ScheduleError(f"--every {text!r}: must be at least 1s")
    return every


def every_text(every: timedelta) -> str:
    """An interval as --every takes it: ``1d``, ``6h``, ``1h30m``, ``90s`` -> ``1m30s``."""
    left = int(every.total_seconds())
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, left = divmod(left, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# Cron's fields, in order, with the range that means "any" (written "*").
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day_of_month", 1, 31),
    ("month", 1, 12),
    ("day_of_week", 0, 6),
)


def _cron_field(ranges: Sequence[ScheduleRange], low: int, high: int) -> str:
    parts = []
    for r in ranges:
        end = max(r.start, r.end)
        if (r.start, end) == (low, high):
            text = "*"
        elif r.start == end:
            text = str(r.start)
        else:
            text = f"{r.start}-{end}"
        parts.append(f"{text}/{r.step}" if r.step > 1 and r.start != end else text)
    return ",".join(parts) or "*"


def calendar_cron(calendar: ScheduleCalendarSpec) -> str:
    """A calendar as the cron string it came from: the server keeps a schedule's cron (from
    ``temporal schedule create --cron``) only as calendars. Seconds other than 0 lead, as in
    Temporal's six-field form."""
    fields = [_cron_field(getattr(calendar, name), low, high) for name, low, high in _CRON_FIELDS]
    if [(r.start, max(r.start, r.end)) for r in calendar.second] != [(0, 0)]:
        fields.insert(0, _cron_field(calendar.second, 0, 59))
    return " ".join(fields)


@dataclass(frozen=True)
class ScheduledRun:
    crawl_id: str
    scheduled_at: datetime
    started_at: datetime
    status: str = "unknown"


@dataclass(frozen=True)
class ScheduleSummary:
    name: str
    when: str
    overlap: str
    paused: bool
    note: str
    next_runs: list[datetime]
    recent_runs: list[ScheduledRun]
    spec: CrawlSpec | None
    """The spec each run starts with (None if the schedule holds none that is valid)."""


class CrawlSchedules:
    """Create, inspect and steer the schedules of crawls on a task queue."""

    def __init__(self, client: Client, *, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def create(
        self,
        name: str,
        spec: CrawlSpec,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        overlap: str = "skip",
        paused: bool = False,
        incremental: bool = True,
    ) -> None:
        """``incremental``: each run recrawls the schedule's last completed run conditionally
        (the spec's ``incremental``); False recrawls everything every time."""
        if not _NAME.fullmatch(name):
            raise ScheduleError(
                f"schedule name {name!r}: use letters, digits, '.', '_' and '-' (at most 200)"
            )
        if (cron is None) == (every is None):
            raise ScheduleError("a schedule needs exactly one of --cron and --every")
        if overlap not in OVERLAP_POLICIES:
            raise ScheduleError(f"overlap {overlap!r}: choose one of {', '.join(OVERLAP_POLICIES)}")
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                "CrawlWorkflow",
                spec.model_copy(update={"incremental": incremental}).model_dump(mode="json"),
                id=name,
                task_queue=self.task_queue,
                static_summary=f"scheduled {crawl_summary(spec)}",
                static_details=crawl_details(spec),
            ),
            spec=ScheduleSpec(
                cron_expressions=[cron] if cron else [],
                intervals=[ScheduleIntervalSpec(every=every)] if every else [],
            ),
            policy=SchedulePolicy(overlap=OVERLAP_POLICIES[overlap]),
            state=ScheduleState(paused=paused, note="created by shardcrawl"),
        )
        try:
            await self.client.create_schedule(
                name,
                schedule,
                memo={WHEN_MEMO: f"every {every_text(every)}" if every else f"cron {cron}"},
            )
        except Exception as exc:
            # The SDK raises ScheduleAlreadyRunningError, or RPCError for a bad cron.
            raise ScheduleError(f"schedule {name!r} not created: {exc}") from exc

    async def names(self) -> list[str]:
        return sorted([entry.id async for entry in await self.client.list_schedules()])

    async def list(self, *, recent: int = 1) -> list[ScheduleSummary]:
        """Every schedule, described (with its ``recent`` last runs)."""
        return [await self.describe(name, recent=recent) for name in await self.names()]

    async def describe(self, name: str, *, recent: int = 10) -> ScheduleSummary:
        description = await self._on(name, lambda handle: handle.describe())
        schedule, info = description.schedule, description.info
        runs = []
        for action in info.recent_actions[-recent:]:
            if isinstance(action.action, ScheduleActionExecutionStartWorkflow):
                crawl_id = action.action.workflow_id
                runs.append(
                    ScheduledRun(
                        crawl_id=crawl_id,
                        scheduled_at=action.scheduled_at,
                        started_at=action.started_at,
                        status=await self._status(crawl_id),
                    )
                )
        # The server keeps a cron as calendars; the memo of a schedule made here has it as it
        # was written, and one made elsewhere gets it back from the calendars.
        intervals = [f"every {every_text(i.every)}" for i in schedule.spec.intervals]
        crons = [f"cron {c}" for c in schedule.spec.cron_expressions]
        crons += [f"cron {calendar_cron(c)}" for c in schedule.spec.calendars]
        when = await description.memo_value(WHEN_MEMO, ", ".join([*crons, *intervals]))
        spec = self._spec_of(schedule)
        overlap = schedule.policy.overlap
        return ScheduleSummary(
            name=name,
            when=when,
            overlap=next((k for k, v in OVERLAP_POLICIES.items() if v == overlap), str(overlap)),
            paused=schedule.state.paused,
            note=schedule.state.note or "",
            next_runs=list(info.next_action_times),
            recent_runs=runs,
            spec=spec,
        )

    def _spec_of(self, schedule: Schedule) -> CrawlSpec | None:
        """The crawl spec in the schedule's action; None if it holds no valid one (the crawls
        it starts then fail, saying why)."""
        action = schedule.action
        if not isinstance(action, ScheduleActionStartWorkflow) or not action.args:
            return None
        arg = action.args[0]
        try:
            if isinstance(arg, Payload):
                # A schedule's action comes back as it was stored: through the codec too.
                arg = self.client.data_converter.payload_converter.from_payload(
                    decode_payload(arg), dict
                )
            return CrawlSpec.model_validate(arg)
        except (ValueError, TypeError):
            return None

    async def _status(self, crawl_id: str) -> str:
        try:
            status = (await self.client.get_workflow_handle(crawl_id).describe()).status
        except RPCError:
            return "unknown"
        return status.name.lower() if status else "unknown"

    async def pause(self, name: str, *, note: str = "paused by shardcrawl") -> None:
        await self._on(name, lambda handle: handle.pause(note=note))

    async def unpause(self, name: str, *, note: str = "unpaused by shardcrawl") -> None:
        await self._on(name, lambda handle: handle.unpause(note=note))

    async def trigger(self, name: str) -> None:
        """Run now, under the schedule's overlap policy."""
        await self._on(name, lambda handle: handle.trigger())

    async def delete(self, name: str) -> None:
        """The schedule goes; crawls it started keep running and keep their output."""
        await self._on(name, lambda handle: handle.delete())

    async def _on(self, name: str, operation: Callable[[ScheduleHandle], Awaitable[T]]) -> T:
        """One operation on the named schedule; a name that does not exist is a ScheduleError."""
        try:
            return await operation(self.client.get_schedule_handle(name))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise ScheduleError(f"no schedule named {name!r}") from exc
            raise
