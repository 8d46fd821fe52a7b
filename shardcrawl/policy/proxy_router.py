"""A shard's side of proxy leasing: which hosts go through a pool, the slots it asked the
crawl's broker for, the leases it holds, and what its fetches through each proxy came to.

The first of the spec's routes that matches a host decides: ``direct`` (no proxy, whatever the
worker's environment says), or a pool in ``rotate`` or ``sticky`` mode, whose slots only the
broker (``proxy_broker.ProxyBroker``) grants. A host's fetch that needs slots asks once and
waits; the grant arrives by signal and is used by the next dispatch pass or given back, so no
slot sits idle in a shard. Politeness is untouched: the host's budget is leased first and
counted per target host, and proxy slots only ever narrow the batch.

Asks and leases belong to one run of the shard (``generation``): a shard drains before it
continues as new, and its next run's first message tells the broker the earlier run's are over.

Plain and deterministic (the shard holds one).
"""

from __future__ import annotations

from shardcrawl.models import FetchOutcome, ProxyLease, ProxyRoute, ProxySpec
from shardcrawl.models.proxy_messages import ProxyAsk, ProxyAsks, ProxyGrant, ProxyGrants, ProxyUse
from shardcrawl.policy.proxy_health import is_proxy_failure

__all__ = ["BATCH", "DIRECT", "ROBOTS", "SITEMAP", "ProxyRouter", "brokered", "route_of"]

DIRECT: list[ProxyLease] = []
# What a fetch is for: a host may have a batch and a robots.txt or sitemap fetch at once.
BATCH, ROBOTS, SITEMAP = "b", "r", "s"
Key = tuple[str, str]  # (what for, host)


def brokered(spec: ProxySpec) -> bool:
    """Whether any route goes through a pool, so the crawl runs a proxy broker."""
    return any(route.mode != "direct" for route in spec.routes)


def route_of(spec: ProxySpec, host: str) -> ProxyRoute | None:
    """The host's route through a pool, or None for direct."""
    found = next((r for r in spec.routes if r.matches(host)), None)
    return found if found is not None and found.mode != "direct" else None


class ProxyRouter:
    def __init__(self, spec: ProxySpec, *, shard: int, generation: int = 0) -> None:
        self.spec = spec
        self.shard = shard
        self.generation = generation
        self._routes: dict[str, ProxyRoute | None] = {}
        self._next_id = 0
        self._asked: dict[Key, int] = {}
        self._ask_of: dict[int, Key] = {}
        self._granted: dict[Key, ProxyGrant] = {}
        self._held: dict[Key, ProxyGrant] = {}
        self._asks: list[ProxyAsk] = []
        self._releases: list[int] = []
        self._uses: dict[tuple[str, str], ProxyUse] = {}
        # A later run's first message ends the earlier run's leases at the broker.
        self._hello = generation > 0 and brokered(spec)

    def route(self, host: str) -> ProxyRoute | None:
        if host not in self._routes:
            self._routes[host] = route_of(self.spec, host)
        return self._routes[host]

    def take(self, kind: str, host: str, slots: int) -> ProxyGrant | None:
        """The granted lease for the host's fetch, now held; None while it waits for one
        (asking the broker, once, for ``slots``). Only for hosts with a route."""
        key = (kind, host)
        grant = self._granted.pop(key, None)
        if grant is not None:
            self._held[key] = grant
            return grant
        if key not in self._asked and key not in self._held:
            self._next_id += 1
            self._asked[key], self._ask_of[self._next_id] = self._next_id, key
            self._asks.append(ProxyAsk(id=self._next_id, host=host, slots=slots))
        return None

    def waits(self, kind: str, host: str) -> bool:
        """Whether the host's fetch waits for a grant (whose arrival wakes it)."""
        return (kind, host) in self._asked

    def receive(self, message: ProxyGrants) -> list[str]:
        """The broker's grants; the hosts they are for. A grant for an earlier run is not
        ours (the broker ended it when this run said hello); one no ask waits for goes back."""
        if message.generation != self.generation:
            return []
        hosts = []
        for grant in message.grants:
            key = self._ask_of.pop(grant.id, None)
            if key is None or self._asked.get(key) != grant.id:
                self._releases.append(grant.id)
                continue
            del self._asked[key]
            self._granted[key] = grant
            hosts.append(key[1])
        return hosts

    def return_unused(self) -> None:
        """Grants a dispatch pass did not use go back at once (the host lost its work, or
        its turn): a slot is never held idle."""
        for grant in self._granted.values():
            self._releases.append(grant.id)
        self._granted.clear()

    def release(self, kind: str, host: str) -> None:
        grant = self._held.pop((kind, host), None)
        if grant is not None:
            self._releases.append(grant.id)

    def observe(self, host: str, outcomes: list[FetchOutcome]) -> None:
        """What the fetch's requests through each proxy came to, for the broker's health."""
        for outcome in outcomes:
            if outcome.proxy is None or (outcome.status is None and outcome.error is None):
                continue
            failed = is_proxy_failure(outcome)
            if outcome.status is None and not failed:
                continue  # refused by us (robots.txt, address): not the proxy's doing
            use = self._uses.get((outcome.proxy, host))
            if use is None:
                use = self._uses[(outcome.proxy, host)] = ProxyUse(proxy=outcome.proxy, host=host)
            if failed:
                use.failures.append(outcome.error or "")
            elif outcome.blocked:
                use.blocks += 1
            else:
                use.answers += 1
                use.latency_ms += outcome.latency_ms or 0

    def has_message(self) -> bool:
        return bool(self._hello or self._asks or self._releases or self._uses)

    def take_message(self) -> ProxyAsks:
        message = ProxyAsks(
            shard=self.shard,
            generation=self.generation,
            asks=self._asks,
            releases=self._releases,
            uses=list(self._uses.values()),
        )
        self._asks, self._releases, self._uses, self._hello = [], [], {}, False
        return message

    def holds(self) -> bool:
        """Whether any lease is held or granted (the shard must give it back before it
        continues as new)."""
        return bool(self._held or self._granted)
