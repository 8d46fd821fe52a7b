"""ProxyBrokerWorkflow: the crawl's one holder of proxy capacity and health.

A thin shell over ``ProxyBroker`` (shardcrawl/proxy_broker.py), which decides everything:
shards signal ``asks`` (slots wanted, leases given back, what their fetches through each proxy
came to), and the broker signals each shard the ``proxy_grants`` it can serve, in one message
per shard per workflow task. It sleeps until a message comes, or a cool-down or ban ends while
an ask waits.

It is a child of the crawl (ABANDON, like the shards: Temporal applies a parent-close policy
when the parent continues as new), continues as new with its whole state inline (proxies,
leases, waiting asks, running sticky sessions: small), and ends when the crawl, after its
shards finished, signals ``finish``: it answers with each proxy's fleet-wide stats.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow

from shardcrawl.models import ProxyStats, shard_workflow_id
from shardcrawl.models.proxy_messages import (
    BrokerInput,
    BrokerResult,
    ProxyAsks,
    ProxyGrant,
    ProxyGrants,
)
from shardcrawl.policy.proxy_broker import ProxyBroker
from shardcrawl.workflows.parent import crawl_parent
from shardcrawl.workflows.run_size import RunSize

__all__ = ["ProxyBrokerWorkflow"]


@workflow.defn(name="ProxyBrokerWorkflow")
class ProxyBrokerWorkflow:
    @workflow.init
    def __init__(self, broker: BrokerInput) -> None:
        """Runs before any signal handler, so a shard's message that arrives with a new run's
        first task finds the state of the run before."""
        self._input = broker
        self._broker = ProxyBroker(broker.proxies)
        self._broker.restore(broker.state)
        self._size = RunSize(events_per_run=broker.history_events_per_run)
        self._size.carry(broker.largest_payload_bytes)
        self._dirty = False
        self._finish = False

    @workflow.signal
    def asks(self, message: ProxyAsks) -> None:
        self._size.note(message)
        now = workflow.now().timestamp()
        self._broker.receive(message, now=now, jitter=workflow.random().random())
        self._dirty = True

    @workflow.signal
    def finish(self) -> None:
        self._finish = True
        self._dirty = True

    @workflow.query
    def proxies(self) -> dict[str, ProxyStats]:
        """Each proxy's fleet-wide use and health, for live status."""
        return self._broker.stats(workflow.now().timestamp())

    @workflow.run
    async def run(self, broker: BrokerInput) -> BrokerResult:
        parent = crawl_parent("ProxyBrokerWorkflow")
        self._size.started()
        while not self._finish:
            self._dirty = False
            await self._send(self._broker.grant(workflow.now().timestamp()))
            if self._size.should_continue_as_new():
                self._continue_as_new()
            if self._dirty:
                continue
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._dirty, timeout=self._next_wake())
        result = BrokerResult(proxies=self._broker.stats(workflow.now().timestamp()))
        self._size.note(result)
        await parent.signal("proxies_finished", result)
        return result

    async def _send(self, grants: dict[int, list[ProxyGrant]]) -> None:
        """One message per shard; a shard that has closed meanwhile holds nothing."""
        shards = sorted(grants)
        sends = []
        for shard in shards:
            generation = self._broker.generation_of(shard)
            message = ProxyGrants(generation=generation, grants=grants[shard])
            self._size.note(message)
            handle = workflow.get_external_workflow_handle(
                shard_workflow_id(self._input.crawl_id, shard)
            )
            sends.append(handle.signal("proxy_grants", message))
        results = await asyncio.gather(*sends, return_exceptions=True)
        for shard, outcome in zip(shards, results, strict=True):
            if isinstance(outcome, BaseException):
                workflow.logger.warning("shard %d took no grants (%s)", shard, outcome)
                self._broker.forget(shard)

    def _next_wake(self) -> timedelta | None:
        now = workflow.now().timestamp()
        future = [t - now for t in self._broker.wake_times(now) if t > now]
        return timedelta(seconds=min(future)) if future else None

    def _continue_as_new(self) -> None:
        state = list(self._broker.export(workflow.now().timestamp()))
        next_input = self._input.model_copy(
            update={"state": state, "largest_payload_bytes": self._size.largest_payload}
        )
        self._size.note(next_input)
        workflow.continue_as_new(next_input)
