"""The ``shardcrawl`` command line: run, start, schedule and steer crawls; run a server or a
worker.

Exit codes: 0 success (for ``run`` and ``wait``: the crawl completed), 1 the crawl did not
complete, 2 a usage, spec or connection error (printed without a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, NoReturn

from temporalio.service import RPCError

from shardcrawl.cli.arguments import build_parser, spec_from_args
from shardcrawl.cli.commands import (
    cmd_export,
    cmd_report,
    cmd_run,
    cmd_server,
    cmd_signal,
    cmd_start,
    cmd_status,
    cmd_wait,
    cmd_worker,
)
from shardcrawl.cli.schedule import cmd_schedule
from shardcrawl.cli.terminal import EXIT_ERROR, EXIT_NOT_COMPLETED, CrawlNotCompleted, err_console
from shardcrawl.core.errors import ShardcrawlError
from shardcrawl.temporal.connection import exit_now

__all__ = ["build_parser", "entrypoint", "main"]


async def _cancel_on_sigterm(command: Coroutine[Any, Any, int]) -> int:
    """SIGTERM ends a command like Ctrl-C does: cancelled, so that `run` cancels its crawl and
    stops the server and workers it started instead of leaving them behind."""
    task = asyncio.ensure_future(command)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 130


_ASYNC = {
    "run": cmd_run,
    "start": cmd_start,
    "status": cmd_status,
    "wait": cmd_wait,
    "pause": cmd_signal,
    "resume": cmd_signal,
    "cancel": cmd_signal,
    "report": cmd_report,
    "export": cmd_export,
    "schedule": lambda args: cmd_schedule(args, spec_from_args),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Seed URLs may also follow options (``schedule create NAME --every 1h URL``), which
    argparse alone leaves unrecognized once a positional before the options was matched."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and (not hasattr(args, "urls") or any(x.startswith("-") for x in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.urls = [*args.urls, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "server":
            return cmd_server(args)
        if args.command == "worker":
            return cmd_worker(args)
        return asyncio.run(_cancel_on_sigterm(_ASYNC[args.command](args)))
    except CrawlNotCompleted as exc:
        err_console.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        return EXIT_NOT_COMPLETED
    except (ShardcrawlError, RPCError) as exc:
        err_console.print(
            f"shardcrawl {args.command}: {exc}", highlight=False, markup=False, soft_wrap=True
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def entrypoint() -> NoReturn:
    """The ``shardcrawl`` console script."""
    exit_now(main())


if __name__ == "__main__":
    entrypoint()
