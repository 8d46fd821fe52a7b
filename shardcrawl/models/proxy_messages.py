"""Messages between the shards and the crawl's proxy broker (``ProxyBrokerWorkflow``).

A shard asks for proxy slots for a host's next batch, gives back what its batches held, and
says what its requests through each proxy came to; the broker grants slots from the whole
pool, fleet-wide (docs/architecture.md, "Proxies"). Pure pydantic models, compact on the wire:
one message per shard and dispatch pass, one grant message per shard and broker task.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shardcrawl.models import ProxyLease, ProxySpec, ProxyStats

__all__ = [
    "BrokerInput",
    "BrokerResult",
    "ProxyAsk",
    "ProxyAsks",
    "ProxyGrant",
    "ProxyGrants",
    "ProxyUse",
    "broker_workflow_id",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def broker_workflow_id(crawl_id: str) -> str:
    """The crawl's proxy broker: one per crawl, stable across continue-as-new."""
    return f"{crawl_id}/proxies"


class ProxyAsk(_Model):
    """Slots wanted for one host's next batch (or robots.txt, or sitemap) fetch."""

    id: int = Field(description="the shard's own number for it; the lease it becomes keeps it")
    host: str
    slots: int = Field(ge=1)


class ProxyUse(_Model):
    """What one fetch's requests through one proxy for one host came to: the broker's only
    input on health."""

    proxy: str
    host: str
    answers: int = 0
    latency_ms: int = Field(default=0, description="summed over answers")
    blocks: int = 0
    failures: list[str] = Field(default_factory=list, description="failure classes, in order")


class ProxyAsks(_Model):
    """Shard to broker. ``generation`` is the shard's run: a message from a later run than the
    broker knows means the earlier run's leases and asks are over (it drained before it
    continued as new, and grants still on their way to it are lost to it)."""

    shard: int
    generation: int = 0
    asks: list[ProxyAsk] = Field(default_factory=list)
    releases: list[int] = Field(default_factory=list, description="lease ids given back")
    uses: list[ProxyUse] = Field(default_factory=list)
    closing: bool = Field(default=False, description="the shard's last: it asks for nothing more")


class ProxyGrant(_Model):
    """An ask granted: its lease. ``partial``: a rotating host's lease that does not cover
    every healthy proxy of its pool, so its batch is kept short for the rotation to go on."""

    id: int
    leases: list[ProxyLease] = Field(min_length=1)
    partial: bool = False


class ProxyGrants(_Model):
    generation: int
    grants: list[ProxyGrant]


class BrokerInput(_Model):
    crawl_id: str
    proxies: ProxySpec
    history_events_per_run: int = 10_000
    state: list[list[Any]] = Field(
        default_factory=list, description="ProxyBroker.export(), after continue-as-new"
    )
    largest_payload_bytes: int = 0


class BrokerResult(_Model):
    """Broker to crawl, when told to finish: each proxy's fleet-wide use and health."""

    proxies: dict[str, ProxyStats] = Field(default_factory=dict)
