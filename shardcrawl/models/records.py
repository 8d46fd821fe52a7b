"""Output records that are not a page's: the one record of a URL that ended without a
response, written by the batch (a failure, a refusal) or by the shard (a host given up on, a
batch cut off by a cancel). One shape for all of them (README, "Output")."""

from __future__ import annotations

from typing import Any

from shardcrawl.models import UrlTask

__all__ = ["CANCELLED", "failure_record"]

CANCELLED = "cancelled"
"""A URL whose batch a cancel cut off: the crawl ended before it did."""


def failure_record(task: UrlTask, error: str | None, *, attempts: int) -> dict[str, Any]:
    """Why the URL ended (its failure class or refusal), after how many requests (0: none
    was sent), at what depth; ``status`` is null, as no response came, and ``items`` holds
    what an errback yielded, as a page's record holds what its callback did."""
    return {
        "url": task.url,
        "status": None,
        "error": error,
        "attempts": attempts,
        "depth": task.depth,
        "items": [],
    }
