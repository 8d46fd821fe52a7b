"""Sizes of a crawl's workflow histories, read from Temporal itself: every run of the crawl
workflow and of its shards, its event count and its largest payload.

For benchmarks and tests, which must not take the workflows' own word for how large their
histories and payloads are.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from google.protobuf.message import Message
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

__all__ = ["RunAudit", "audit_crawl", "largest_payload"]

_PAYLOAD = "temporal.api.common.v1.Payload"


@dataclass(frozen=True)
class RunAudit:
    workflow_id: str
    run_id: str
    status: WorkflowExecutionStatus | None
    events: int
    largest_payload_bytes: int
    largest_payload_event: str


def largest_payload(message: Message) -> int:
    """The largest ``Payload`` anywhere inside a protobuf message (serialized bytes)."""
    if message.DESCRIPTOR.full_name == _PAYLOAD:
        return message.ByteSize()
    best = 0
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            best = max(best, largest_payload(value))
            continue
        # A repeated field or a map (of messages, e.g. memo and header fields).
        for item in value.values() if hasattr(value, "values") else value:
            if isinstance(item, Message):
                best = max(best, largest_payload(item))
    return best


async def audit_crawl(client: Client, crawl_id: str) -> list[RunAudit]:
    """Every run of ``crawl_id`` and of its shards (``crawl_id/shard-N``), oldest first."""
    query = f"WorkflowId = '{crawl_id}' OR WorkflowId STARTS_WITH '{crawl_id}/'"
    # The visibility store may lag behind a run that just closed: list until two agree.
    listed: list[WorkflowExecution] = []
    for _ in range(20):
        again = [e async for e in client.list_workflows(query)]
        key = sorted((e.id, e.run_id, e.status) for e in again)
        if again and key == sorted((e.id, e.run_id, e.status) for e in listed):
            break
        listed = again
        await asyncio.sleep(0.5)
    runs: list[tuple[object, RunAudit]] = []
    for execution in listed:
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        events = 0
        largest, where = 0, ""
        async for event in handle.fetch_history_events():
            events += 1
            size = largest_payload(event)
            if size > largest:
                largest, where = size, event.WhichOneof("attributes") or ""
        runs.append(
            (
                execution.start_time,
                RunAudit(
                    workflow_id=execution.id,
                    run_id=execution.run_id,
                    status=execution.status,
                    events=events,
                    largest_payload_bytes=largest,
                    largest_payload_event=where,
                ),
            )
        )
    runs.sort(key=lambda pair: (pair[1].workflow_id, pair[0]))
    return [run for _, run in runs]
