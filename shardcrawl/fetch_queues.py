"""Fleets: which workers fetch a host. A route may name one (``fetch_queue: eu``); its hosts'
batches, robots.txt and sitemaps then run as activities on that fleet's Temporal task queue,
while every workflow stays on the crawl's main queue.

A fleet's task queue is derived from the main queue, so two crawls on different main queues
(tests, ``shardcrawl run``'s private queue) never share fetch workers: fleet ``eu`` of main
queue ``shardcrawl`` is ``shardcrawl-fetch-eu``. Pure: the shard, the worker and status use it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from shardcrawl.urls import hostname

if TYPE_CHECKING:  # contracts validates fleet names with this module
    from shardcrawl.contracts import ProxySpec

__all__ = ["DEFAULT_FLEET", "FLEET_NAME", "FetchQueues", "check_fleet_name", "fetch_task_queue"]

DEFAULT_FLEET = "default"
"""The main queue's fleet: the workers that also run the workflows."""
FLEET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def check_fleet_name(name: str) -> str:
    """A fleet name, or ValueError saying what one looks like."""
    if not FLEET_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a fleet name: lower-case letters, digits, '-' and '_', starting "
            "with a letter or digit, at most 40 characters"
        )
    return name


def fetch_task_queue(main_queue: str, fleet: str | None) -> str:
    """The Temporal task queue a fleet's workers poll for fetch activities."""
    if fleet is None or fleet == DEFAULT_FLEET:
        return main_queue
    return f"{main_queue}-fetch-{fleet}"


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
