"""Fleets: which workers fetch a host. A route may name one (``fetch_queue: eu``); its hosts'
batches, robots.txt and sitemaps then run as activities on that fleet's Temporal task queue
(``shardcrawl.core.fleet_names``), while every workflow stays on the crawl's main queue. Pure:
the shard and status use it.
"""

from __future__ import annotations

from shardcrawl.core.urls import hostname
from shardcrawl.models import ProxySpec

__all__ = ["FetchQueues"]


class FetchQueues:
    """Each host's fleet by the spec's routes (the first route matching a host wins, as for
    its proxies); None is the main queue."""

    def __init__(self, spec: ProxySpec) -> None:
        self._routes = spec.routes
        self._of: dict[str, str | None] = {}
        self.named = sorted({r.fetch_queue for r in spec.routes if r.fetch_queue is not None})

    def of_host(self, host: str) -> str | None:
        if host not in self._of:
            route = next((r for r in self._routes if r.matches(host)), None)
            self._of[host] = route.fetch_queue if route is not None else None
        return self._of[host]

    def of_url(self, url: str) -> str | None:
        """The fleet of an origin's or URL's host."""
        return self.of_host(hostname(url))
