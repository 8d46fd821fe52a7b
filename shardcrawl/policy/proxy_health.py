"""Health of each proxy, and of each (proxy, host) pair, from the outcomes of its requests.

- A proxy that fails to carry a request (refused or lost connection, DNS, a tunnel or auth
  refusal, its own 502/503 saying the upstream failed) rests at once; one that times out
  rests after ``TIMEOUTS_TO_REST`` in a row, since a slow target times out through any proxy.
  Each rest in a row doubles, from the spec's ``cooldown_seconds`` up to
  ``max_cooldown_seconds``; after a rest the proxy is tried again, and one request that it
  carries clears its record.
- A host that answers a proxy with a block bans that proxy for that host only, for
  ``ban_seconds`` (doubling on each ban in a row); the proxy keeps serving other hosts.
- ``score`` (a moving average of recent outcomes, 1.0 for a fresh proxy) orders the proxies
  that are free to choose: a failure or a block counts 0, an answer 1, or less for a slow one
  (``SLOW_MS / latency`` past ``SLOW_MS``).

Plain and deterministic (the crawl's proxy broker holds the one copy, fed by every shard's
fetches, so what one shard learns holds for all); jitter comes from the caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shardcrawl.models import FetchOutcome, ProxySpec, ProxyStats
from shardcrawl.models.proxy_messages import ProxyUse

__all__ = ["PROXY_FAILURES", "ProxyHealth", "is_proxy_failure"]

PROXY_FAILURES = frozenset(
    {
        "connection_refused",
        "connection_error",
        "connection_lost",
        "dns",
        "timeout",
        "tunnel",
        "proxy_auth",
        "download_failed",
        "proxy_error",
    }
)
TIMEOUTS_TO_REST = 3
SCORE_WEIGHT = 0.2  # weight of the newest outcome in the score
SLOW_MS = 2000


def is_proxy_failure(outcome: FetchOutcome) -> bool:
    """A request that went through a proxy and got no answer: the proxy's failure, which
    says nothing about the host (only a response is the host's)."""
    return outcome.proxy is not None and outcome.status is None and outcome.error in PROXY_FAILURES


@dataclass
class _Proxy:
    requests: int = 0
    responses: int = 0
    failures: int = 0
    blocks: int = 0
    bans: int = 0
    cooldowns: int = 0
    latency_ms_total: int = 0
    score: float = 1.0
    failing: int = 0  # failures in a row
    timeouts: int = 0  # timeouts in a row
    rests_in_a_row: int = 0
    cooling_until: float = 0.0
    # host -> [banned until, bans in a row]
    banned: dict[str, list[float]] = field(default_factory=dict)


class ProxyHealth:
    def __init__(self, spec: ProxySpec) -> None:
        self.spec = spec
        self._proxies: dict[str, _Proxy] = {}

    def _proxy(self, url: str) -> _Proxy:
        proxy = self._proxies.get(url)
        if proxy is None:
            proxy = self._proxies[url] = _Proxy()
        return proxy

    def usable(self, url: str, host: str, now: float) -> bool:
        proxy = self._proxies.get(url)
        if proxy is None:
            return True
        ban = proxy.banned.get(host)
        return proxy.cooling_until <= now and (ban is None or ban[0] <= now)

    def score(self, url: str) -> float:
        proxy = self._proxies.get(url)
        return proxy.score if proxy else 1.0

    def proven(self, url: str) -> bool:
        """Whether the proxy has carried a request since it last failed: until then the
        broker lets one fetch at a time try it, so a dead proxy costs one fetch per rest."""
        proxy = self._proxies.get(url)
        return proxy is not None and proxy.responses > 0 and proxy.rests_in_a_row == 0

    def observe(self, use: ProxyUse, *, now: float, jitter: float) -> None:
        """Fold one fetch's requests through a proxy for a host into its record: answers
        first, then blocks, then failures (a proxy that dies during a batch rests)."""
        proxy = self._proxy(use.proxy)
        proxy.requests += use.answers + use.blocks + len(use.failures)
        answered = use.answers + use.blocks
        proxy.responses += answered
        proxy.latency_ms_total += use.latency_ms
        if answered:
            proxy.timeouts = 0
            proxy.rests_in_a_row = 0
        if use.answers:
            mean = use.latency_ms / answered
            speed = SLOW_MS / max(SLOW_MS, mean)
            keep = (1 - SCORE_WEIGHT) ** use.answers
            proxy.score = proxy.score * keep + speed * (1 - keep)
            ban = proxy.banned.get(use.host)
            if ban is not None and ban[0] <= now and not use.blocks:
                del proxy.banned[use.host]  # answered well after its ban: a clean record again
        if use.blocks:
            proxy.blocks += use.blocks
            proxy.score *= (1 - SCORE_WEIGHT) ** use.blocks
            self._ban(proxy, use.host, now)
        for error in use.failures:
            proxy.failures += 1
            proxy.score *= 1 - SCORE_WEIGHT
            timeout = error == "timeout"
            proxy.timeouts = proxy.timeouts + 1 if timeout else 0
            if not timeout or proxy.timeouts >= TIMEOUTS_TO_REST:
                self._rest(proxy, now, jitter)

    def _rest(self, proxy: _Proxy, now: float, jitter: float) -> None:
        if proxy.cooling_until > now:
            return  # already resting: the batch's other requests failed with it
        seconds = min(
            self.spec.max_cooldown_seconds,
            self.spec.cooldown_seconds * 2**proxy.rests_in_a_row,
        )
        proxy.cooling_until = now + seconds * (0.5 + jitter / 2)
        proxy.rests_in_a_row += 1
        proxy.cooldowns += 1
        proxy.timeouts = 0

    def _ban(self, proxy: _Proxy, host: str, now: float) -> None:
        ban = proxy.banned.get(host)
        if ban is not None and ban[0] > now:
            return  # the batch's other requests were blocked with it
        in_a_row = ban[1] + 1 if ban is not None else 1
        proxy.banned[host] = [now + self.spec.ban_seconds * 2 ** (in_a_row - 1), in_a_row]
        proxy.bans += 1

    def wake_times(self, now: float) -> list[float]:
        """When a resting proxy, or a ban, ends."""
        times = [p.cooling_until for p in self._proxies.values() if p.cooling_until > now]
        for proxy in self._proxies.values():
            times += [until for until, _ in proxy.banned.values() if until > now]
        return times

    def stats(self, url: str, now: float) -> ProxyStats:
        proxy = self._proxies.get(url) or _Proxy()
        return ProxyStats(
            requests=proxy.requests,
            responses=proxy.responses,
            failures=proxy.failures,
            blocks=proxy.blocks,
            bans=proxy.bans,
            cooldowns=proxy.cooldowns,
            latency_ms_total=proxy.latency_ms_total,
            state="cooling" if proxy.cooling_until > now else "ok",
            cooling_until=proxy.cooling_until if proxy.cooling_until > now else 0.0,
            banned_on=sorted(h for h, (until, _) in proxy.banned.items() if until > now),
        )

    def export(self) -> list[list[Any]]:
        return [[url, asdict(proxy)] for url, proxy in self._proxies.items()]

    def restore(self, records: list[list[Any]]) -> None:
        for url, record in records:
            self._proxies[url] = _Proxy(**record)
