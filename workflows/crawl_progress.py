"""What the crawl shows of itself: search attributes, current details, the progress query."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

from shardcrawl.models import CrawlProgress, CrawlSpec, ShardStatus
from shardcrawl.policy.report import sum_totals
from shardcrawl.policy.visibility import PAGES, PAGES_EVERY_SECONDS, STATUS

__all__ = ["StatusPublisher", "crawl_progress"]


class StatusPublisher:
    def __init__(self) -> None:
        self._pages_published_at = 0.0

    def publish(
        self, state: str, pages: int, *, max_pages: int, credits_left: int, run: int
    ) -> None:
        """The state and pages as search attributes, upserted when the state changes (pages
        then too, and at most every PAGES_EVERY_SECONDS otherwise, as each upsert is a
        history event), and a progress line as the current details (free)."""
        now = workflow.now().timestamp()
        current = workflow.info().typed_search_attributes
        updates: list[SearchAttributeUpdate[Any]] = []
        if current.get(STATUS) != state:
            updates.append(STATUS.value_set(state))
        if current.get(PAGES) != pages and (
            updates or now - self._pages_published_at >= PAGES_EVERY_SECONDS
        ):
            updates.append(PAGES.value_set(pages))
            self._pages_published_at = now
        if updates:
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(
            f"{state}: {pages} pages fetched of at most {max_pages}, "
            f"{credits_left} credits left, run {run}"
        )


def crawl_progress(
    crawl_id: str,
    state: str,
    *,
    spec: CrawlSpec | None,
    started_at: datetime | None,
    statuses: dict[int, ShardStatus],
    credits_left: int,
    continued_as_new: int,
    largest_payload_bytes: int,
) -> CrawlProgress:
    shards = [statuses[i].totals for i in sorted(statuses)]
    totals = sum_totals(shards)
    elapsed = (workflow.now() - started_at).total_seconds() if started_at else 0.0
    return CrawlProgress(
        crawl_id=crawl_id,
        state=state,  # type: ignore[arg-type]
        started_at=started_at,
        elapsed_seconds=round(elapsed, 3),
        pages_per_second=round(totals.pages / elapsed, 3) if elapsed > 0 else 0.0,
        max_pages=spec.max_pages if spec else 0,
        shard_count=spec.shards if spec else 0,
        credits_left=credits_left,
        totals=totals,
        shards=shards,
        history_length=workflow.info().get_current_history_length(),
        continued_as_new=continued_as_new,
        largest_payload_bytes=largest_payload_bytes,
    )
