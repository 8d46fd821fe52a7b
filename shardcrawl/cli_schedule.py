"""``shardcrawl schedule ...``: recurring crawls, through ``CrawlClient.schedules``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from shardcrawl.client import CrawlClient
from shardcrawl.config import Config
from shardcrawl.contracts import CrawlSpec
from shardcrawl.errors import ScheduleError
from shardcrawl.schedules import OVERLAP_POLICIES, ScheduleSummary, parse_every

__all__ = ["add_schedule_parser", "cmd_schedule"]

console = Console()


def add_schedule_parser(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add_spec_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    schedule = sub.add_parser("schedule", help="recurring crawls on Temporal Schedules")
    actions = schedule.add_subparsers(dest="schedule_command", required=True)
    create = actions.add_parser("create", help="a crawl that runs on a cron or an interval")
    create.add_argument("name", help="the schedule; each run's crawl id is NAME-TIMESTAMP")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='a cron expression, e.g. "0 3 * * *"')
    when.add_argument("--every", help="an interval: 90s, 15m, 6h, 1d, 1h30m")
    create.add_argument(
        "--overlap",
        default="skip",
        choices=sorted(OVERLAP_POLICIES),
        help="when the previous run is still going (default: skip this one)",
    )
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.add_argument(
        "--full",
        action="store_true",
        help="recrawl everything each run (default: ask conditionally for the pages of the "
        "last completed run, and count what changed)",
    )
    add_spec_options(create)
    actions.add_parser("list", help="every schedule, with its next run")
    for name, text in [
        ("describe", "timing, next runs, recent runs and their outcome"),
        ("pause", "stop starting runs"),
        ("unpause", "start runs again"),
        ("trigger", "start a run now (under the overlap policy)"),
        ("delete", "remove the schedule; its crawls and their output stay"),
    ]:
        actions.add_parser(name, help=text).add_argument("name")


async def cmd_schedule(args: argparse.Namespace, spec_from_args: Callable[..., CrawlSpec]) -> int:
    command = args.schedule_command
    if command == "create":
        # The user's input is checked before any connection is tried.
        if args.crawl_id:
            raise ScheduleError("--id does not apply: each scheduled run gets NAME-TIMESTAMP")
        every = parse_every(args.every) if args.every else None
        spec = spec_from_args(args)
    schedules = (await CrawlClient.connect(Config.load())).schedules
    if command == "create":
        await schedules.create(
            args.name,
            spec,
            cron=args.cron,
            every=every,
            overlap=args.overlap,
            paused=args.paused,
            incremental=not args.full,
        )
        print(f"schedule {args.name} created")
    elif command == "list":
        console.print(_list_table(await schedules.list()))
    elif command == "describe":
        console.print(_describe_table(await schedules.describe(args.name)))
    else:
        await getattr(schedules, command)(args.name)
        print(f"schedule {args.name}: {command} done")
    return 0


def _list_table(summaries: list[ScheduleSummary]) -> Table:
    table = Table(title="schedules")
    for column in ("name", "when", "overlap", "state", "next run", "last run"):
        table.add_column(column)
    for s in summaries:
        last = s.recent_runs[-1] if s.recent_runs else None
        table.add_row(
            s.name,
            s.when,
            s.overlap,
            "paused" if s.paused else "active",
            s.next_runs[0].isoformat(timespec="seconds") if s.next_runs else "-",
            f"{last.crawl_id} ({last.status})" if last else "-",
        )
    return table


def _describe_table(s: ScheduleSummary) -> Table:
    table = Table(title=f"schedule {s.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("when", s.when)
    table.add_row("overlap", s.overlap)
    table.add_row("state", f"{'paused' if s.paused else 'active'} ({s.note})")
    table.add_row(
        "next runs", "\n".join(t.isoformat(timespec="seconds") for t in s.next_runs) or "-"
    )
    table.add_row(
        "recent runs",
        "\n".join(
            f"{r.crawl_id}  started {r.started_at.isoformat(timespec='seconds')}  {r.status}"
            for r in reversed(s.recent_runs)
        )
        or "-",
    )
    return table
