"""Sizes of a crawl's workflow histories, read from Temporal itself: every run of the crawl
workflow and of its shards, its event count and its largest payload.

For benchmarks and tests, which must not take the workflows' own word for how large their
histories and payloads are.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from google.protobuf.message import Message
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

__all__ = [
    "RunAudit",
    "audit_crawl",
    "audit_run",
    "crawl_query",
    "largest_payload",
    "list_runs",
]

_PAYLOAD = "temporal.api.common.v1.Payload"


@dataclass(frozen=True)
class RunAudit:
    workflow_id: str
    run_id: str
    status: WorkflowExecutionStatus | None
    events: int
    largest_payload_bytes: int
    largest_payload_event: str
    history_bytes: int
    largest_event_bytes: int
    largest_event_type: str
    event_types: Counter[str] = field(default_factory=Counter)
    event_bytes: Counter[str] = field(default_factory=Counter)  # serialized bytes, by kind
    activities: Counter[str] = field(default_factory=Counter)  # scheduled, by activity type
    signals: Counter[str] = field(default_factory=Counter)  # received, by signal name


def largest_payload(message: Message) -> int:
    """The largest ``Payload`` anywhere inside a protobuf message (serialized bytes)."""
    if message.DESCRIPTOR.full_name == _PAYLOAD:
        return message.ByteSize()
    best = 0
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if isinstance(value, Message):
            best = max(best, largest_payload(value))
            continue
        # A repeated field or a map (of messages, e.g. memo and header fields).
        for item in value.values() if hasattr(value, "values") else value:
            if isinstance(item, Message):
                best = max(best, largest_payload(item))
    return best


def crawl_query(crawl_id: str) -> str:
    """A visibility query for the crawl workflow and its shards, every run."""
    return f"WorkflowId = '{crawl_id}' OR WorkflowId STARTS_WITH '{crawl_id}/'"


async def list_runs(client: Client, crawl_id: str) -> list[WorkflowExecution]:
    """Every run of ``crawl_id`` and of its shards (``crawl_id/shard-N``), oldest first per
    workflow. The visibility store may lag behind a run that just closed: this lists until two
    listings agree."""
    listed: list[WorkflowExecution] = []
    for _ in range(20):
        again = [e async for e in client.list_workflows(crawl_query(crawl_id))]
        key = sorted((e.id, e.run_id, e.status) for e in again)
        if again and key == sorted((e.id, e.run_id, e.status) for e in listed):
            break
        listed = again
        await asyncio.sleep(0.5)
    return sorted(listed, key=lambda e: (e.id, e.start_time))


async def audit_run(
    client: Client, workflow_id: str, run_id: str, status: WorkflowExecutionStatus | None
) -> RunAudit:
    """One run's history: its events, their bytes (in all and by kind), the activities it
    scheduled and the signals it received, its largest payload and event."""
    events = history_bytes = largest = largest_event = 0
    where = largest_event_type = ""
    kinds: Counter[str] = Counter()
    kind_bytes: Counter[str] = Counter()
    activities: Counter[str] = Counter()
    signals: Counter[str] = Counter()
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    async for event in handle.fetch_history_events():
        events += 1
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        kinds[kind] += 1
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signals[event.workflow_execution_signaled_event_attributes.signal_name] += 1
        size = event.ByteSize()
        history_bytes += size
        kind_bytes[kind] += size
        if size > largest_event:
            largest_event, largest_event_type = size, kind
        payload = largest_payload(event)
        if payload > largest:
            largest, where = payload, kind
    return RunAudit(
        workflow_id=workflow_id,
        run_id=run_id,
        status=status,
        events=events,
        largest_payload_bytes=largest,
        largest_payload_event=where,
        history_bytes=history_bytes,
        largest_event_bytes=largest_event,
        largest_event_type=largest_event_type,
        event_types=kinds,
        event_bytes=kind_bytes,
        activities=activities,
        signals=signals,
    )


async def audit_crawl(client: Client, crawl_id: str) -> list[RunAudit]:
    """``audit_run`` of every run ``list_runs`` finds."""
    return [
        await audit_run(client, e.id, e.run_id, e.status) for e in await list_runs(client, crawl_id)
    ]
