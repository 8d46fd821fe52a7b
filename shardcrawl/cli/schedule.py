"""``shardcrawl schedule ...``: recurring crawls, through ``CrawlClient.schedules``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shardcrawl.cli.tables import Column, fitted_table
from shardcrawl.core.errors import ScheduleError
from shardcrawl.core.layout import shown_location
from shardcrawl.models import CrawlSpec
from shardcrawl.temporal.client import CrawlClient
from shardcrawl.temporal.config import Config
from shardcrawl.temporal.schedules import OVERLAP_POLICIES, ScheduleSummary, parse_every

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
        console.print(_list_table(await schedules.list(), width=console.width))
    elif command == "describe":
        console.print(_describe_table(await schedules.describe(args.name)))
    else:
        await getattr(schedules, command)(args.name)
        print(f"schedule {args.name}: {command} done")
    return 0


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


_LIST_COLUMNS = (
    Column("name", right=False),
    Column("when", right=False),
    Column("state", right=False, drop=3),
    Column("next run (UTC)", right=False, drop=1),
    Column("last run (UTC)", right=False, drop=4),
    Column("outcome", right=False, drop=2),
    Column("overlap", right=False, drop=5),
)


def _list_table(summaries: list[ScheduleSummary], *, width: int) -> Table:
    rows = []
    for s in summaries:
        last = s.recent_runs[-1] if s.recent_runs else None
        rows.append(
            [
                s.name,
                s.when,
                "paused" if s.paused else "active",
                _clock(s.next_runs[0]) if s.next_runs else "-",
                _clock(last.started_at) if last else "-",
                last.status if last else "-",
                s.overlap,
            ]
        )
    return fitted_table(_LIST_COLUMNS, rows, width=width, title="schedules")


def _describe_table(s: ScheduleSummary) -> Table:
    """What the schedule runs (seeds, output, limits) and when, and how its runs went."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    spec = s.spec
    rows = [
        ("schedule", s.name),
        ("when", s.when),
        ("overlap", s.overlap),
        ("state", f"{'paused' if s.paused else 'active'}" + (f" ({s.note})" if s.note else "")),
    ]
    if spec is None:
        rows.append(("spec", "none that is valid: its runs fail"))
    else:
        rows += [
            ("seeds", "\n".join(spec.seeds)),
            ("output", f"{shown_location(spec.output)} (each run in {s.name}-YYYYMMDD-HHMMSS)"),
            (
                "crawl",
                f"spider {spec.spider}, up to {spec.max_pages} pages, depth {spec.max_depth}, "
                + ("incremental" if spec.incremental else "full each run"),
            ),
        ]
    rows += [
        ("next runs", "\n".join(_clock(t) + " UTC" for t in s.next_runs[:5]) or "-"),
        (
            "recent runs",
            "\n".join(f"{r.crawl_id}  {r.status}" for r in reversed(s.recent_runs)) or "-",
        ),
    ]
    for name, value in rows:
        table.add_row(Text(name), Text(value))
    return table
