"""What the Temporal UI (and ``temporal workflow list --query``) shows of a crawl.

- Search attributes on the crawl workflow: ``ShardcrawlStatus`` (starting, running, paused,
  finishing, completed, cancelled), ``ShardcrawlSeedDomains`` (the seeds' hosts) and
  ``ShardcrawlPagesFetched`` (kept current every ``PAGES_EVERY_SECONDS`` while it runs). A crawl
  a schedule started also has Temporal's own ``TemporalScheduledById``.
- A memo with the spec's summary (set by the workflow, however it was started), a static
  summary and details when shardcrawl starts it, and each shard's host range as its summary.
- The crawl's one-line progress as its "current details", which costs no history event.

The UI's Workflows list shows a crawl's shards too. ``CRAWLS_ONLY`` is the list query that
shows crawls alone (save it as a view in the UI); ``crawls_view_url`` is the list with that
query filled in, one click from the terminal. The pages and status columns are the search
attributes above: the list's column picker offers them.

Custom search attributes must be registered in the namespace before a workflow sets them;
``ensure_search_attributes`` (run by every worker as it starts) adds what is missing, so a
crawl never sets an unknown attribute.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from temporalio.common import SearchAttributeKey

from shardcrawl.core import urls
from shardcrawl.models import CrawlSpec

__all__ = [
    "CRAWLS_ONLY",
    "PAGES",
    "PAGES_EVERY_SECONDS",
    "SCHEDULED_BY",
    "SEARCH_ATTRIBUTES",
    "SEED_DOMAINS",
    "STATUS",
    "crawl_details",
    "crawl_summary",
    "crawls_view_url",
    "seed_domains",
    "shard_summary",
    "spec_memo",
]

STATUS = SearchAttributeKey.for_keyword("ShardcrawlStatus")
SEED_DOMAINS = SearchAttributeKey.for_keyword_list("ShardcrawlSeedDomains")
PAGES = SearchAttributeKey.for_int("ShardcrawlPagesFetched")
SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")
"""Temporal's own: the schedule that started a workflow."""
SEARCH_ATTRIBUTES = (STATUS, SEED_DOMAINS, PAGES)
PAGES_EVERY_SECONDS = 30.0
MAX_SEED_DOMAINS = 100  # a keyword list stays small in the visibility store
MEMO_SEEDS = 5
CRAWLS_ONLY = "WorkflowType = 'CrawlWorkflow'"
"""The list query for crawls without their shards (each shard is a DomainShardWorkflow)."""


def crawls_view_url(ui_url: str, namespace: str = "default") -> str:
    """The Temporal UI's Workflows list showing crawls only."""
    query = quote(CRAWLS_ONLY)
    return f"{ui_url.rstrip('/')}/namespaces/{quote(namespace)}/workflows?query={query}"


def seed_domains(spec: CrawlSpec) -> list[str]:
    return sorted({urls.hostname(seed) for seed in spec.seeds})[:MAX_SEED_DOMAINS]


def spec_memo(spec: CrawlSpec) -> dict[str, Any]:
    """The spec in brief, for the UI's memo: what was crawled, how, and where it went."""
    return {
        "seeds": spec.seeds[:MEMO_SEEDS],
        "seed_count": len(spec.seeds),
        "allowed_domains": spec.effective_allowed_domains()[:MAX_SEED_DOMAINS],
        "max_pages": spec.max_pages,
        "max_depth": spec.max_depth,
        "shards": spec.shards,
        "spider": spec.spider,
        "output": spec.output,
        "proxy_routes": len(spec.proxies.routes),
    }


def crawl_summary(spec: CrawlSpec) -> str:
    """One line for a crawl's static summary."""
    domains = seed_domains(spec)
    more = f" and {len(domains) - 3} more" if len(domains) > 3 else ""
    return (
        f"crawl of {', '.join(domains[:3])}{more}: up to {spec.max_pages} pages, "
        f"depth {spec.max_depth}, {spec.shards} shards, to {spec.output}"
    )


def crawl_details(spec: CrawlSpec) -> str:
    """The spec in brief as Markdown, for a crawl's static details."""
    return "\n".join(f"- **{name}**: {value}" for name, value in spec_memo(spec).items())


def shard_summary(shard: int, shard_count: int) -> str:
    """A shard's host range: the hosts it owns, by the rule ``urls.shard_of`` applies."""
    return f"shard {shard} of {shard_count}: hosts whose blake2b(host) mod {shard_count} is {shard}"
