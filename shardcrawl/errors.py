"""Exceptions shared across shardcrawl.

Callers catch ``ShardcrawlError`` to tell the project's own, explained failures
apart from bugs; every message names what failed and why, never credentials.

    ShardcrawlError(Exception)
    ├── SpecError(ShardcrawlError, ValueError)       bad crawl spec: names the field and the value
    ├── ConfigError(ShardcrawlError, ValueError)     bad process setting (environment variable)
    ├── StoreError(ShardcrawlError)                  the output store cannot be read or written
    │   └── StoreUnavailable(StoreError)             ... for now: the same call may succeed later
    ├── ScheduleError(ShardcrawlError)               a schedule cannot be made, found or parsed
    ├── CrawlIdInUse(ShardcrawlError)                a crawl with that id ran or runs already
    └── TemporalUnavailableError(ShardcrawlError)    no Temporal server answers at the address
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CrawlIdInUse",
    "ScheduleError",
    "ShardcrawlError",
    "SpecError",
    "StoreError",
    "StoreUnavailable",
    "TemporalUnavailableError",
]


class ShardcrawlError(Exception):
    """Base class, so a CLI can report expected failures without a traceback."""


class SpecError(ShardcrawlError, ValueError):
    """The crawl spec is invalid; the message names the field and the offending value."""


class ConfigError(ShardcrawlError, ValueError):
    """A process setting is unknown or invalid; the message names the variable and value."""


class StoreError(ShardcrawlError):
    """The output store cannot be read or written; the message names the store url and cause."""


class StoreUnavailable(StoreError):
    """The store failed in a way that passes (refused, timed out, 5xx, throttled, disk full):
    a crawl waits for it. Any other ``StoreError`` (bad credentials, no such bucket, access
    denied) is permanent, and fails a crawl at once."""


class ScheduleError(ShardcrawlError):
    """A schedule's name, timing or overlap policy is invalid, or no such schedule exists."""


class CrawlIdInUse(ShardcrawlError):
    """A crawl id names one crawl for good (its output folder too): a new crawl needs another."""


class TemporalUnavailableError(ShardcrawlError):
    """No Temporal server answers at the configured address, so nothing can be scheduled."""
