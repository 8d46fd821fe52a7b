"""Which proxies each host's next fetch goes through, decided once for the whole crawl.

The crawl's ``ProxyBrokerWorkflow`` holds one ``ProxyBroker``. Shards ask it for slots for a
host (``receive``), and it grants leases from the whole pool (``grant``), so that:

- **capacity holds fleet-wide** and is no partition: every slot of a proxy is leased to at most
  one fetch at a time, whichever shard asks, and a slot one shard does not use is another's;
- **rotation spans the pool**: a ``rotate`` host's lease takes one slot at a time from each
  usable proxy in turn, least recently used first (those failing often last); a lease that
  cannot cover every healthy proxy of the pool is ``partial``, and the shard keeps that batch
  short, so the next lease rotates on;
- **sticky** hosts keep one proxy of the whole pool for their session, until it fails or the
  host bans it;
- **health is fleet-wide**: every shard's fetches feed one ``ProxyHealth``. A proxy that has
  not carried a request since it last failed (or ever) is leased to one fetch at a time, so a
  dead proxy is tried by one batch per cool-down, fleet-wide.

Asks wait in arrival order until they can be served (a later ask that can be served does not
wait behind one that cannot). A shard's leases end when it gives them back, or when it says it
is a later run (it drained before continuing as new): nothing is held by a worker, so a worker
that dies loses no lease (its batch runs again under the same one).

Plain and deterministic: the clock and the jitter come from the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shardcrawl.models import ProxyLease, ProxySpec, ProxyStats
from shardcrawl.models.proxy_messages import ProxyAsk, ProxyAsks, ProxyGrant
from shardcrawl.policy.proxy_health import ProxyHealth
from shardcrawl.policy.proxy_router import route_of

__all__ = ["POOR_SCORE", "ProxyBroker"]

POOR_SCORE = 0.5
Key = tuple[int, int]  # (shard, ask or lease id)


@dataclass
class _Session:
    proxy: str
    until: float


class ProxyBroker:
    def __init__(self, spec: ProxySpec) -> None:
        self.spec = spec
        self.health = ProxyHealth(spec)
        self._pool_of: dict[str, str] = {}
        self._tags: dict[str, list[str]] = {}
        self._capacity: dict[str, int] = {}
        self._members: dict[str, list[str]] = {}
        for name, pool in spec.pools.items():
            self._members[name] = [p.url for p in pool.proxies]
            for proxy in pool.proxies:
                self._pool_of[proxy.url] = name
                self._tags[proxy.url] = proxy.tags
                self._capacity[proxy.url] = proxy.capacity
        self._in_use: dict[str, int] = dict.fromkeys(self._capacity, 0)
        self._holders: dict[str, int] = dict.fromkeys(self._capacity, 0)  # leases on it
        self._last_used: dict[str, int] = dict.fromkeys(self._capacity, 0)
        self._uses = 0
        self._leases: dict[Key, list[ProxyLease]] = {}
        self._waiting: dict[Key, ProxyAsk] = {}
        self._generation: dict[int, int] = {}
        self._sessions: dict[str, _Session] = {}
        self.granted = 0  # leases granted, for the cost per batch

    # -- messages --------------------------------------------------------------------------------

    def receive(self, message: ProxyAsks, *, now: float, jitter: float) -> None:
        """A shard's message: a later run ends its earlier run's leases and asks; then what
        it gives back, what its fetches found, and what it asks for."""
        shard = message.shard
        known = self._generation.get(shard, 0)
        if message.generation < known:
            return  # from a run that has ended: its leases went with it
        if message.generation > known:
            self._generation[shard] = message.generation
            self.forget(shard)
        for lease_id in message.releases:
            self._release((shard, lease_id))
        for use in message.uses:
            if use.proxy in self._capacity:
                self.health.observe(use, now=now, jitter=jitter)
        for ask in message.asks:
            if (shard, ask.id) not in self._leases:
                self._waiting[(shard, ask.id)] = ask
        if message.closing:
            self.forget(shard)

    def forget(self, shard: int) -> None:
        """A shard that has finished (or cannot be reached): what it held or asked is over."""
        for key in [k for k in self._leases if k[0] == shard]:
            self._release(key)
        for key in [k for k in self._waiting if k[0] == shard]:
            del self._waiting[key]

    def _release(self, key: Key) -> None:
        for lease in self._leases.pop(key, []):
            self._in_use[lease.proxy] -= lease.slots
            self._holders[lease.proxy] -= 1

    def grant(self, now: float) -> dict[int, list[ProxyGrant]]:
        """Every waiting ask that can be served now, by shard, oldest first."""
        out: dict[int, list[ProxyGrant]] = {}
        for key, ask in list(self._waiting.items()):
            planned = self._plan(ask, now)
            if planned is None:
                continue
            leases, partial = planned
            del self._waiting[key]
            self._leases[key] = leases
            for lease in leases:
                self._in_use[lease.proxy] += lease.slots
                self._holders[lease.proxy] += 1
                self._uses += 1
                self._last_used[lease.proxy] = self._uses
            self.granted += 1
            out.setdefault(key[0], []).append(ProxyGrant(id=ask.id, leases=leases, partial=partial))
        return out

    # -- decisions -------------------------------------------------------------------------------

    def _free(self, url: str) -> int:
        """Slots a new lease may take: all free ones of a proven proxy; one, and only while no
        fetch holds it, of a proxy still to prove itself."""
        free = self._capacity[url] - self._in_use[url]
        if self.health.proven(url):
            return free
        return min(free, 1) if self._holders[url] == 0 else 0

    def _healthy(self, pool: str, host: str, now: float) -> list[str]:
        return [u for u in self._members[pool] if self.health.usable(u, host, now)]

    def _candidates(self, pool: str, host: str, now: float) -> list[str]:
        """Healthy proxies with a slot to lease, best first: least recently used, those
        failing often (score under ``POOR_SCORE``) last."""
        usable = [u for u in self._healthy(pool, host, now) if self._free(u) > 0]
        return sorted(usable, key=lambda u: (self.health.score(u) < POOR_SCORE, self._last_used[u]))

    def _plan(self, ask: ProxyAsk, now: float) -> tuple[list[ProxyLease], bool] | None:
        route = route_of(self.spec, ask.host)
        if route is None or route.pool is None:
            return None  # not the broker's (a shard asks only for routed hosts)
        if route.mode == "sticky":
            chosen = self._sticky(route.pool, ask.host, now)
            if chosen is None:
                return None
            if not self._in_session(ask.host, now):
                self._sessions[ask.host] = _Session(chosen, now + route.session_seconds)
            return [ProxyLease(proxy=chosen, slots=min(ask.slots, self._free(chosen)))], False
        candidates = self._candidates(route.pool, ask.host, now)
        if not candidates:
            return None
        taken: dict[str, int] = {}
        slots = ask.slots
        while slots > 0 and candidates:
            for url in list(candidates):
                if slots == 0:
                    break
                taken[url] = taken.get(url, 0) + 1
                slots -= 1
                if taken[url] >= self._free(url):
                    candidates.remove(url)
        partial = len(taken) < len(self._healthy(route.pool, ask.host, now))
        # Proven proxies first: a batch's requests take them first on a tie, so a single
        # request (a seed, a retry) is not the one that tries a proxy still to prove itself.
        order = sorted(taken, key=lambda u: not self.health.proven(u))
        return [ProxyLease(proxy=u, slots=taken[u]) for u in order], partial

    def _in_session(self, host: str, now: float) -> bool:
        """Whether the host has an identity it keeps: not expired, failing or banned."""
        session = self._sessions.get(host)
        return (
            session is not None
            and session.until > now
            and self.health.usable(session.proxy, host, now)
        )

    def _sticky(self, pool: str, host: str, now: float) -> str | None:
        """The host's identity (it waits for it while busy), or the best free proxy."""
        if self._in_session(host, now):
            proxy = self._sessions[host].proxy
            return proxy if self._free(proxy) > 0 else None
        candidates = self._candidates(pool, host, now)
        return candidates[0] if candidates else None

    # -- what the workflow reports and carries ----------------------------------------------------

    def session_of(self, host: str) -> str | None:
        session = self._sessions.get(host)
        return session.proxy if session else None

    def generation_of(self, shard: int) -> int:
        """The shard's run the broker knows, which its grants are for."""
        return self._generation.get(shard, 0)

    def wake_times(self, now: float) -> list[float]:
        """When a cool-down or a ban ends, if an ask waits (it may be served then)."""
        return self.health.wake_times(now) if self._waiting else []

    def stats(self, now: float) -> dict[str, ProxyStats]:
        """Every proxy, fleet-wide: its health, the slots leased now and its capacity."""
        out = {}
        for url, pool in self._pool_of.items():
            stats = self.health.stats(url, now)
            stats.pool, stats.tags = pool, self._tags[url]
            stats.in_use, stats.capacity = self._in_use[url], self._capacity[url]
            out[url] = stats
        return out

    def export(self, now: float) -> Iterator[list[Any]]:
        """The whole state as records, for continue-as-new (sessions still running only)."""
        yield ["order", self._uses, self._last_used, self.granted]
        for record in self.health.export():
            yield ["health", *record]
        for host, session in self._sessions.items():
            if session.until > now:
                yield ["session", host, session.proxy, session.until]
        for (shard, lease_id), leases in self._leases.items():
            yield ["lease", shard, lease_id, [[p.proxy, p.slots] for p in leases]]
        for (shard, _), ask in self._waiting.items():
            yield ["ask", shard, ask.id, ask.host, ask.slots]
        for shard, generation in self._generation.items():
            yield ["generation", shard, generation]

    def restore(self, records: list[list[Any]]) -> None:
        for kind, *value in records:
            if kind == "order":
                self._uses, self.granted = value[0], value[2]
                self._last_used.update({u: n for u, n in value[1].items() if u in self._capacity})
            elif kind == "health":
                self.health.restore([value])
            elif kind == "session":
                self._sessions[value[0]] = _Session(value[1], value[2])
            elif kind == "lease":
                key = (value[0], value[1])
                self._leases[key] = [ProxyLease(proxy=u, slots=n) for u, n in value[2]]
                for url, slots in value[2]:
                    self._in_use[url] += slots
                    self._holders[url] += 1
            elif kind == "ask":
                ask = ProxyAsk(id=value[1], host=value[2], slots=value[3])
                self._waiting[(value[0], ask.id)] = ask
            elif kind == "generation":
                self._generation[value[0]] = value[1]
