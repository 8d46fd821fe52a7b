"""Messages between the workflows: the crawl workflow and its shards (URLs and credits,
links between shards, shard statuses, failures), and what a run hands its next (checkpoints), with
a shard's input and result."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from shardcrawl.models.base import _Model
from shardcrawl.models.spec import CrawlSpec
from shardcrawl.models.stats import ShardTotals
from shardcrawl.models.tasks import UrlTask
from shardcrawl.models.timeseries import TimeSeries

__all__ = [
    "CrawlCheckpoint",
    "Enqueue",
    "LinkMessage",
    "ShardCheckpoint",
    "ShardFailure",
    "ShardInput",
    "ShardStatus",
    "ShardResult",
    "shard_workflow_id",
]


class Enqueue(_Model):
    """Parent to shard: URLs the shard owns, and page credits it may spend. ``seq`` orders them."""

    seq: int
    urls: list[UrlTask] = Field(default_factory=list)
    credits: int = 0
    seeds: bool = Field(default=False, description="seeds are not counted as discovered links")


class LinkMessage(_Model):
    """Shard to shard: links the receiver owns, found by the sender's batches. ``seq`` counts
    the sender's messages to this receiver (see shardcrawl.policy.link_counts). Plain links go
    as two columns (URL, depth); one with more (a priority, a redirect count, a request) goes
    whole."""

    sender: int
    seq: int
    urls: list[str] = Field(default_factory=list)
    depths: list[int] = Field(default_factory=list)
    rich: list[UrlTask] = Field(default_factory=list)

    @model_validator(mode="after")
    def _columns_match(self) -> LinkMessage:
        if len(self.urls) != len(self.depths):
            raise ValueError(f"{len(self.urls)} urls but {len(self.depths)} depths")
        return self

    @classmethod
    def of(cls, sender: int, seq: int, tasks: list[UrlTask]) -> LinkMessage:
        plain: list[UrlTask] = []
        rich: list[UrlTask] = []
        for task in tasks:
            (plain if task == UrlTask(url=task.url, depth=task.depth) else rich).append(task)
        return cls(
            sender=sender,
            seq=seq,
            urls=[t.url for t in plain],
            depths=[t.depth for t in plain],
            rich=rich,
        )

    def tasks(self) -> list[UrlTask]:
        plain = [UrlTask(url=u, depth=d) for u, d in zip(self.urls, self.depths, strict=True)]
        return plain + self.rich


class ShardStatus(_Model):
    """Shard to parent: credit needs, whether it is idle, and how many link messages it has
    sent to each other shard and applied from each (the parent's test for the crawl's end)."""

    shard: int
    processed_seq: int
    idle: bool
    wants_credits: int = 0
    returned_credits: int = 0
    sent: dict[int, int] = Field(default_factory=dict, description="receiver -> messages")
    applied: dict[int, int] = Field(default_factory=dict, description="sender -> messages")
    totals: ShardTotals = Field(default_factory=ShardTotals)


class ShardCheckpoint(_Model):
    """A shard's state handed to its next run: small fields inline, the rest as segment keys."""

    generation: int
    processed_seq: int
    credits: int
    paused: bool
    batch_seq: int
    totals: ShardTotals
    seen_segments: list[str]
    frontier_segments: list[str]
    hosts_segments: list[str]
    robots_segments: list[str]
    retry_segments: list[str] = Field(default_factory=list)
    pressure_segments: list[str] = Field(default_factory=list)
    sitemap_segments: list[str] = Field(default_factory=list)
    resting: dict[str, float] = Field(
        default_factory=dict,
        description="host -> workflow time before which it may not be allotted slots",
    )
    pending: list[Enqueue] = Field(
        default_factory=list, description="messages received while saving, not yet applied"
    )
    pending_links: list[LinkMessage] = Field(
        default_factory=list, description="link messages received while saving"
    )
    link_counts: dict[str, Any] = Field(
        default_factory=dict, description="shardcrawl.policy.link_counts.LinkCounts.export()"
    )
    previous_crawl_next: int = Field(default=0, description="the previous crawl's next item file")
    records_seq: int = Field(default=0, description="files of records the shard wrote itself")
    series: TimeSeries = Field(default_factory=TimeSeries, description="the runs' time series")


def shard_workflow_id(crawl_id: str, shard: int) -> str:
    """A shard's workflow id: its crawl's id and its index (stable across continue-as-new)."""
    return f"{crawl_id}/shard-{shard}"


class ShardInput(_Model):
    crawl_id: str
    shard: int
    shard_count: int
    spec: CrawlSpec
    checkpoint: ShardCheckpoint | None = None
    previous_crawl: str | None = None
    previous_crawl_files: int = Field(
        default=0, description="the previous crawl's item files it owns"
    )


class ShardResult(_Model):
    """A finished shard's counters; its per-host stats are in the store (``hosts_segments``)."""

    shard: int
    totals: ShardTotals
    hosts_segments: list[str]
    unfetched: int = Field(default=0, description="URLs left in the frontier (page limit, cancel)")
    series: TimeSeries = Field(default_factory=TimeSeries, description="bounded, see timeseries")


class ShardFailure(_Model):
    """Shard to parent, just before the shard fails: the parent cannot watch a shard started
    by an earlier run of itself, so the shard says so."""

    shard: int
    message: str


class CrawlCheckpoint(_Model):
    """The crawl workflow's state handed to its next run (small: a few entries per shard)."""

    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    generation: int
    started_at: datetime
    statuses: list[bytes] = Field(
        description="the shards' last statuses as segments.pack_records segments, inline: "
        "compressed, so a thousand shards' counters still fit one payload"
    )
    sent_seq: dict[int, int]
    granted_at_seq: dict[int, int]
    pending_urls: dict[int, list[UrlTask]]
    pending_credits: dict[int, int]
    credits_left: int
    paused: bool
    pause_changed: bool
    largest_payload_bytes: int
    previous_crawl: str | None = None
