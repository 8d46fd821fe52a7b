"""What the shard engine's tests share: a test clock, an engine on a small spec, seeds, and a
batch answered 200."""

from __future__ import annotations

import random

from shardcrawl.models import BatchResult, CrawlSpec, FetchOutcome, Link, UrlTask
from shardcrawl.policy.batch_cutter import HostSlice
from shardcrawl.policy.shard_engine import ShardEngine


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _engine(clock: Clock, *, shard_count: int = 1, **spec: object) -> ShardEngine:
    fields = {
        "seeds": ["http://a.test/"],
        "allowed_domains": ["test"],
        "obey_robots_txt": False,
        **spec,
    }
    return ShardEngine(
        CrawlSpec.model_validate(fields),
        shard=0,
        shard_count=shard_count,
        clock=clock,
        random=random.Random(7).random,
    )


def _seed(engine: ShardEngine, *url_list: str) -> None:
    for url in url_list:
        engine.accept(UrlTask(url=url), is_link=False)


def _ok(batch: list[HostSlice], links: dict[str, list[str]] | None = None) -> BatchResult:
    """Every request of the batch answered 200; ``links`` maps a URL to what its page links."""
    tasks = [t for part in batch for t in part.tasks]
    found = [
        Link(url=link, depth=t.depth + 1) for t in tasks for link in (links or {}).get(t.url, [])
    ]
    outcomes = [FetchOutcome(url=t.url, task=i, status=200) for i, t in enumerate(tasks)]
    return BatchResult(batch_id="b", outcomes=outcomes, links=found, items_written=len(tasks))


def _urls(batch: list[HostSlice]) -> list[str]:
    return [t.url for part in batch for t in part.tasks]
