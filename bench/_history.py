"""A crawl's Temporal histories, every run of its crawl and shard workflows: totals, each run."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import _checkout  # noqa: F401 - first, so that shardcrawl is this checkout's
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from shardcrawl.models import shard_workflow_id
from shardcrawl.testing.history_audit import audit_crawl, audit_run, crawl_query, list_runs

__all__ = ["HistoryTotals", "analyze_histories", "history_totals"]


@dataclass(frozen=True)
class HistoryTotals:
    runs: int
    workflow_ids: int
    events: int
    history_bytes: int
    event_types: Counter[str]
    event_bytes: Counter[str]  # serialized bytes, by event type
    activities: Counter[str]  # activities scheduled, by type
    signals: Counter[str]  # signals received, by name


async def history_totals(client: Client, crawl_id: str) -> HistoryTotals:
    """Events and bytes of every run of the crawl workflow and of its shards (each one's
    continue-as-new runs too), listed from visibility and read from Temporal."""
    audits = await audit_crawl(client, crawl_id)
    return HistoryTotals(
        runs=len(audits),
        workflow_ids=len({a.workflow_id for a in audits}),
        events=sum(a.events for a in audits),
        history_bytes=sum(a.history_bytes for a in audits),
        event_types=sum((a.event_types for a in audits), Counter()),
        event_bytes=sum((a.event_bytes for a in audits), Counter()),
        activities=sum((a.activities for a in audits), Counter()),
        signals=sum((a.signals for a in audits), Counter()),
    )


async def _first_event_attrs(handle: WorkflowHandle[Any, Any]) -> Any:
    async for event in handle.fetch_history_events(page_size=1):
        return event.workflow_execution_started_event_attributes
    return None


async def _runs_by_chain(client: Client, ids: list[str]) -> set[tuple[str, str, str]]:
    """(workflow id, run id, status) of every run, from describe and the continued-as-new
    links in each run's first event, not from the visibility store."""
    runs: set[tuple[str, str, str]] = set()
    for wid in ids:
        try:
            desc = await client.get_workflow_handle(wid).describe()
        except RPCError:
            continue  # no such workflow (a shard never started)
        run_id: str | None = desc.run_id
        while run_id:
            handle = client.get_workflow_handle(wid, run_id=run_id)
            status = (await handle.describe()).status
            runs.add((wid, run_id, status.name if status else "UNKNOWN"))
            attrs = await _first_event_attrs(handle)
            run_id = attrs.continued_execution_run_id if attrs is not None else None
    return runs


async def analyze_histories(client: Client, crawl_id: str, shards: int) -> dict[str, Any]:
    start = time.monotonic()
    query = crawl_query(crawl_id)
    ids = [crawl_id] + [shard_workflow_id(crawl_id, i) for i in range(shards)]
    chain = await _runs_by_chain(client, ids)
    list_error = None
    try:
        executions = await list_runs(client, crawl_id)
    except RPCError as exc:
        executions, list_error = [], f"{type(exc).__name__}: {exc}"
    listed = {(e.id, e.run_id, e.status.name if e.status else "UNKNOWN") for e in executions}
    statuses = {(e.id, e.run_id): e.status for e in executions}
    runs = listed if listed else chain
    per_run: list[dict[str, Any]] = []
    event_types: Counter[str] = Counter()
    for wid, run_id, status in sorted(runs):
        audit = await audit_run(client, wid, run_id, statuses.get((wid, run_id)))
        event_types.update(audit.event_types)
        per_run.append(
            {
                "workflow_id": wid,
                "run_id": run_id,
                "status": status,
                "events": audit.events,
                "history_bytes": audit.history_bytes,
                "largest_payload_bytes": audit.largest_payload_bytes,
                "largest_payload_event": audit.largest_payload_event,
                "largest_event_bytes": audit.largest_event_bytes,
                "largest_event_type": audit.largest_event_type,
            }
        )
    longest = max(per_run, key=lambda r: r["events"], default=None)
    biggest = max(per_run, key=lambda r: r["largest_payload_bytes"], default=None)
    biggest_event = max(per_run, key=lambda r: r["largest_event_bytes"], default=None)
    return {
        "list_query": query,
        "list_query_works": bool(listed) and list_error is None,
        "list_error": list_error,
        "runs_source": "list_workflows" if listed else "describe + continued-as-new chain",
        "list_matches_chain": listed == chain if listed else None,
        "runs_total": len(per_run),
        "workflow_ids": len({r["workflow_id"] for r in per_run}),
        "continued_as_new": sum(r["status"] == "CONTINUED_AS_NEW" for r in per_run),
        "run_statuses": dict(Counter(r["status"] for r in per_run)),
        "longest_history_events": longest["events"] if longest else 0,
        "longest_history_run": longest and f"{longest['workflow_id']} {longest['run_id']}",
        "total_events": sum(r["events"] for r in per_run),
        "largest_history_bytes": max((r["history_bytes"] for r in per_run), default=0),
        "largest_payload_bytes": biggest["largest_payload_bytes"] if biggest else 0,
        "largest_payload_event": biggest["largest_payload_event"] if biggest else None,
        "largest_payload_run": biggest and f"{biggest['workflow_id']} {biggest['run_id']}",
        "largest_event_bytes": biggest_event["largest_event_bytes"] if biggest_event else 0,
        "largest_event_type": biggest_event["largest_event_type"] if biggest_event else None,
        "event_types": dict(event_types.most_common()),
        "analysis_seconds": round(time.monotonic() - start, 2),
        "runs": per_run,
    }
