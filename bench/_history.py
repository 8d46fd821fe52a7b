"""Totals over a crawl's Temporal histories: every run of the crawl and shard workflows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import _checkout  # noqa: F401 - first, so that shardcrawl is this checkout's
from temporalio.client import Client

from shardcrawl.testing.history_audit import audit_crawl

__all__ = ["HistoryTotals", "history_totals"]


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
