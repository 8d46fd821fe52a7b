"""The shard's hosts: one record per host name, holding everything the shard knows of it.

A host's politeness budget, its adaptive pressure, its counters, its origins' robots.txt and
what waits on it live together in one ``Host``, found by host name (``table[name]``) or by
one of its origins (``table.of(origin)``: ``http://a.example`` and ``https://a.example:8443``
share a record, since the site behind them is one). Politeness, pressure and stats are
policies over the table, not owners of maps of their own, so a host is never half known.

Work stays keyed by origin (the frontier, the retry queue, ``OriginWatch``): a batch slice,
a robots.txt and a URL's scheme and port are an origin's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from shardcrawl.core import urls
from shardcrawl.models import HostStats, RobotsResult

__all__ = ["HEALTH_WINDOW", "Budget", "Host", "HostState", "HostTable", "State"]

State = Literal["ok", "parked", "probing", "abandoned"]
# The recent requests whose failures tell whether a host, not a page, is failing.
HEALTH_WINDOW = 20


@dataclass
class HostState:
    """The host's adaptive limits and breaker, which ``HostPressure`` decides."""

    concurrency: int
    delay_seconds: float
    state: State = "ok"
    parked_until: float = 0.0
    parks_in_a_row: int = 0
    good_batches: int = 0
    failing_batches: int = 0
    window: deque[bool] = field(default_factory=deque)
    recent_failures: deque[bool] = field(default_factory=lambda: deque(maxlen=HEALTH_WINDOW))
    slowdowns: int = 0
    recoveries: int = 0
    parks: int = 0

    def export(self) -> dict[str, Any]:
        record = dict(self.__dict__)
        record["window"] = list(self.window)
        record["recent_failures"] = list(self.recent_failures)
        return record


@dataclass(slots=True)
class Budget:
    """The host's politeness budget: slots allotted to its batch in flight, and its rest."""

    in_use: int = 0
    batches: int = 0
    not_before: float = 0.0


@dataclass(eq=False, slots=True)
class Host:
    name: str
    budget: Budget = field(default_factory=Budget)
    stats: HostStats = field(default_factory=HostStats)
    # Its adaptive limits and breaker, made by ``HostPressure`` once the shard fetches from it.
    pressure: HostState | None = None
    # Whether an outcome was counted here (the shard fetches from it, not only links to it).
    fetched: bool = False
    # Its origins' robots.txt: None while the fetch is out; tries that failed through a proxy.
    robots: dict[str, RobotsResult | None] = field(default_factory=dict)
    robots_tries: dict[str, int] = field(default_factory=dict)
    # Origins (of any host) that found its batch in flight, looked at again when it lands.
    busy_waiters: dict[str, None] = field(default_factory=dict)
    # Its origins waiting for a proxy grant from the broker, looked at again when it comes.
    grant_waiters: dict[str, None] = field(default_factory=dict)
    # Incremental crawls: its sitemaps not read yet, and its origins waiting for them.
    sitemaps_unread: int = 0
    sitemap_waiters: dict[str, None] = field(default_factory=dict)


class HostTable:
    """Every host the shard has met (fetched from, or only linked to), made on first use."""

    def __init__(self) -> None:
        self._hosts: dict[str, Host] = {}
        self._by_origin: dict[str, Host] = {}

    def __getitem__(self, name: str) -> Host:
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = Host(name=name)
        return host

    def find(self, name: str) -> Host | None:
        """The host's record if the shard has met it (asking does not create one)."""
        return self._hosts.get(name)

    def of(self, origin: str) -> Host:
        """The record of the host an origin belongs to."""
        host = self._by_origin.get(origin)
        if host is None:
            host = self._by_origin[origin] = self[urls.hostname(origin)]
        return host

    def __iter__(self) -> Iterator[Host]:
        return iter(self._hosts.values())

    def __len__(self) -> int:
        return len(self._hosts)
