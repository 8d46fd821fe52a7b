"""Where a crawl's objects live in its store: the output layout other tools rely on.

ID/items/ORIGIN/BATCH.jsonl   one JSON object per fetched page
ID/report.json                the crawl's final stats
ID/robots/ORIGIN.txt          robots.txt as fetched once per origin
"""

from __future__ import annotations

from shardcrawl import urls

__all__ = ["items_key", "items_prefix", "report_key", "robots_key"]


def items_prefix(crawl_id: str) -> str:
    return f"{crawl_id}/items/"


def items_key(crawl_id: str, origin: str, batch_id: str) -> str:
    """Deterministic per batch, so a retried batch replaces its own earlier output."""
    return f"{items_prefix(crawl_id)}{urls.origin_key(origin)}/{batch_id}.jsonl"


def report_key(crawl_id: str) -> str:
    return f"{crawl_id}/report.json"


def robots_key(crawl_id: str, origin: str) -> str:
    return f"{crawl_id}/robots/{urls.origin_key(origin)}.txt"
