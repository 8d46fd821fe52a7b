"""Fleet names and their task queues. A route may name a fleet (``fetch_queue: eu``); its
hosts' fetch activities then run on that fleet's Temporal task queue, derived from the main
queue, so two crawls on different main queues (tests, ``shardcrawl run``'s private queue)
never share fetch workers: fleet ``eu`` of main queue ``shardcrawl`` is
``shardcrawl-fetch-eu``. The spec, the worker's configuration and the shard all use these."""

from __future__ import annotations

import re

__all__ = ["DEFAULT_FLEET", "FLEET_NAME", "check_fleet_name", "fetch_task_queue"]

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
