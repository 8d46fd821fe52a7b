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
    ├── ExportError(ShardcrawlError)                 a crawl's records cannot be exported
    └── TemporalUnavailableError(ShardcrawlError)    no Temporal server answers at the address
"""

from __future__ import annotations

__all__ = [
    "root_cause",
    "ConfigError",
    "CrawlIdInUse",
    "ExportError",
    "ScheduleError",
    "ShardcrawlError",
    "SpecError",
    "StoreError",
    "StoreUnavailable",
    "TemporalUnavailableError",
]


# What Temporal says of a failure that only wraps another: never the cause a user needs.
_WRAPPERS = ("Activity task failed", "Child Workflow execution failed", "Workflow execution failed")


def root_cause(exc: BaseException) -> str:
    """The first message down the failure's chain that is not only a wrapper: Temporal wraps
    an activity's error ("Activity task failed") and a workflow's, and the user needs what
    is inside; our own errors already name the cause below them (the store's OSError). Pure
    (it walks ``cause`` attributes), so workflows use it too."""
    current: BaseException | None = exc
    while current is not None:
        message = getattr(current, "message", None) or str(current)
        if message and message not in _WRAPPERS:
            return str(message)
        current = getattr(current, "cause", None) or current.__cause__
    return str(exc) or type(exc).__name__


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


class ExportError(ShardcrawlError):
    """No records where the crawl's output should be, or the export's file cannot be written."""


class TemporalUnavailableError(ShardcrawlError):
    """No Temporal server answers at the configured address, so nothing can be scheduled."""
