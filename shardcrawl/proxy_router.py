"""Which proxies a host's next batch goes through, within this shard's share of their capacity.

The first of the spec's routes that matches a host decides: ``direct``, or a pool used in
``rotate`` mode (the batch's slots are spread over the pool's least recently used proxies, and
the batch spreads its requests over them) or ``sticky`` mode (one proxy per host, kept for the
route's session length or until it fails or the host bans it; then the host moves to another).

Politeness is untouched: the host's budget is leased first and counted per target host, and
proxy slots only ever narrow the batch. Capacity holds across the fleet because the shard
owns a fixed share of each proxy (``proxy_shares``) and leases no more than that share.

Plain and deterministic (the shard holds one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shardcrawl.contracts import FetchOutcome, ProxyLease, ProxyRoute, ProxySpec, ProxyStats
from shardcrawl.proxy_health import ProxyHealth
from shardcrawl.proxy_shares import deal_shares

__all__ = ["DIRECT", "ProxyRouter"]

DIRECT: list[ProxyLease] = []
POOR_SCORE = 0.5


@dataclass
class _Session:
    proxy: str
    until: float


class ProxyRouter:
    def __init__(self, spec: ProxySpec, *, shard: int, shard_count: int) -> None:
        self.spec = spec
        self.health = ProxyHealth(spec)
        self._pool_of: dict[str, str] = {}
        self._tags: dict[str, list[str]] = {}
        self._share: dict[str, int] = {}
        self._members: dict[str, list[str]] = {}
        for name, pool in spec.pools.items():
            shares = deal_shares([p.capacity for p in pool.proxies], shard_count)[shard]
            self._members[name] = [p.url for p, n in zip(pool.proxies, shares, strict=True) if n]
            for proxy, share in zip(pool.proxies, shares, strict=True):
                self._pool_of[proxy.url] = name
                self._tags[proxy.url] = proxy.tags
                self._share[proxy.url] = share
        self._in_use: dict[str, int] = dict.fromkeys(self._share, 0)
        self._last_used: dict[str, int] = dict.fromkeys(self._share, 0)
        self._uses = 0
        self._sessions: dict[str, _Session] = {}
        self._routes: dict[str, ProxyRoute | None] = {}

    def route(self, host: str) -> ProxyRoute | None:
        """The host's route, or None for direct."""
        if host not in self._routes:
            found = next((r for r in self.spec.routes if r.matches(host)), None)
            self._routes[host] = found if found is not None and found.mode != "direct" else None
        return self._routes[host]

    def _free(self, url: str) -> int:
        return self._share[url] - self._in_use[url]

    def _candidates(self, pool: str, host: str, now: float) -> list[str]:
        """Proxies free to take now, best first: least recently used, those failing often
        (score under ``POOR_SCORE``) last."""
        usable = [
            u for u in self._members[pool] if self._free(u) > 0 and self.health.usable(u, host, now)
        ]
        return sorted(usable, key=lambda u: (self.health.score(u) < POOR_SCORE, self._last_used[u]))

    def available(self, host: str, now: float) -> bool:
        """Whether ``lease`` would give the host a batch now (changes nothing)."""
        return self._plan(host, 1, now) is not None

    def lease(self, host: str, *, slots: int, now: float) -> list[ProxyLease] | None:
        """Proxy slots for a batch of ``slots`` concurrency: ``DIRECT`` without a route, None
        while no proxy the route allows has a free slot (the host waits), else leases of at
        most ``slots`` slots in all."""
        leases = self._plan(host, slots, now)
        route = self.route(host)
        if (
            leases
            and route is not None
            and route.mode == "sticky"
            and not self._in_session(host, now)
        ):
            self._sessions[host] = _Session(leases[0].proxy, now + route.session_seconds)
        for lease in leases or []:
            self._in_use[lease.proxy] += lease.slots
            self._uses += 1
            self._last_used[lease.proxy] = self._uses
        return leases

    def _plan(self, host: str, slots: int, now: float) -> list[ProxyLease] | None:
        route = self.route(host)
        if route is None:
            return DIRECT
        assert route.pool is not None
        if route.mode == "sticky":
            chosen = self._sticky(route, host, now)
            if chosen is None:
                return None
            return [ProxyLease(proxy=chosen, slots=min(slots, self._free(chosen)))]
        return self._rotate(route.pool, host, slots, now) or None

    def _in_session(self, host: str, now: float) -> bool:
        """Whether the host has an identity it keeps: not expired, failing or banned."""
        session = self._sessions.get(host)
        return (
            session is not None
            and session.until > now
            and self.health.usable(session.proxy, host, now)
        )

    def _sticky(self, route: ProxyRoute, host: str, now: float) -> str | None:
        """The host's identity, or the best free proxy for a new session (which ``lease``
        starts)."""
        if self._in_session(host, now):
            # The host keeps its identity, and waits for it while it is busy.
            proxy = self._sessions[host].proxy
            return proxy if self._free(proxy) > 0 else None
        assert route.pool is not None
        candidates = self._candidates(route.pool, host, now)
        return candidates[0] if candidates else None

    def _rotate(self, pool: str, host: str, slots: int, now: float) -> list[ProxyLease]:
        """One slot at a time from each free proxy in turn, best first."""
        candidates = self._candidates(pool, host, now)
        taken: dict[str, int] = {}
        while slots > 0 and candidates:
            for url in list(candidates):
                if slots == 0:
                    break
                taken[url] = taken.get(url, 0) + 1
                slots -= 1
                if taken[url] >= self._free(url):
                    candidates.remove(url)
        return [ProxyLease(proxy=u, slots=n) for u, n in taken.items()]

    def release(self, leases: list[ProxyLease]) -> None:
        for lease in leases:
            self._in_use[lease.proxy] -= lease.slots

    def observe(
        self, host: str, outcomes: list[FetchOutcome], *, now: float, jitter: float
    ) -> None:
        for outcome in outcomes:
            self.health.observe(host, outcome, now=now, jitter=jitter)

    def session_of(self, host: str) -> str | None:
        session = self._sessions.get(host)
        return session.proxy if session else None

    def wake_times(self, now: float) -> list[float]:
        return self.health.wake_times(now)

    def stats(self, now: float) -> dict[str, ProxyStats]:
        """Every proxy this shard may use, with its share as ``capacity``."""
        out = {}
        for url, pool in self._pool_of.items():
            stats = self.health.stats(url, now)
            stats.pool, stats.tags = pool, self._tags[url]
            stats.in_use, stats.capacity = self._in_use[url], self._share[url]
            out[url] = stats
        return out

    def export(self) -> Iterator[list[Any]]:
        """Health, sessions and rotation order, a record each; no leases (the shard drained)."""
        yield ["order", self._uses, self._last_used]
        for record in self.health.export():
            yield ["health", *record]
        for host, session in self._sessions.items():
            yield ["session", host, session.proxy, session.until]

    def restore(self, records: list[list[Any]]) -> None:
        for kind, *value in records:
            if kind == "order":
                self._uses = value[0]
                self._last_used.update({u: n for u, n in value[1].items() if u in self._share})
            elif kind == "health":
                self.health.restore([value])
            elif kind == "session":
                self._sessions[value[0]] = _Session(value[1], value[2])
