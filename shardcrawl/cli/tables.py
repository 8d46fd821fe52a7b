"""Tables and grids that fit the console's width: what the live view and the report are made of."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from shardcrawl.core.formatting import format_rate
from shardcrawl.core.proxy_urls import redact
from shardcrawl.models import HostStats, ProxyStats

__all__ = ["Column", "fitted_table", "host_table", "proxy_table"]

STATE_STYLE = {
    "running": "bold green",
    "paused": "bold yellow",
    "finishing": "bold cyan",
    "completed": "bold green",
    "cancelled": "bold yellow",
    "failed": "bold red",
}


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = True
    drop: int = 0
    """Dropped first when the table is too wide: the highest number goes first; 0 stays."""


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    title: str | None = None,
) -> Table:
    """A table of ``rows`` within ``width`` columns: columns that do not fit are left out,
    least needed first, rather than cut; the first column (a name) is never cut, only folded
    when it alone is wider than the console."""
    keep = list(range(len(columns)))

    def needed(indexes: list[int]) -> int:
        widths = [max([len(columns[i].header), *(len(r[i]) for r in rows)]) for i in indexes]
        return sum(widths) + 3 * (len(indexes) - 1)  # padding each side, and a rule

    while needed(keep) > width and any(columns[i].drop for i in keep):
        keep.remove(max(keep, key=lambda i: columns[i].drop))
    table = Table(
        title=Text(title) if title else None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        expand=False,
    )
    for position, i in enumerate(keep):
        column = columns[i]
        table.add_column(
            Text(column.header),
            justify="right" if column.right else "left",
            no_wrap=position != 0,
            overflow="fold",
            min_width=min(width, max(len(r[i]) for r in rows)) if position == 0 and rows else None,
        )
    for row in rows:
        table.add_row(*(Text(row[i]) for i in keep))
    return table


_HOST_COLUMNS = (
    Column("host", right=False),
    Column("requests", drop=5),
    Column("pages"),
    Column("failures", drop=3),
    Column("blocked", drop=2),
    Column("retries", drop=6),
    Column("state", right=False, drop=1),
    Column("now", drop=4),
)


def _state(h: HostStats) -> str:
    """A host's state, its parks, and whether it reached its quota (max_pages_per_host)."""
    state = f"{h.state} ({h.parks} parks)" if h.parks else h.state
    return f"{state}, at quota" if h.at_quota else state


def _limits(h: HostStats) -> str:
    """The host's adaptive limits now: "4x" (4 at a time), "2x0.5s" (2, 0.5 s apart)."""
    if not h.concurrency:
        return "-"
    return f"{h.concurrency}x{h.delay_seconds:g}s" if h.delay_seconds else f"{h.concurrency}x"


def _host_row(name: str, h: HostStats) -> list[str]:
    return [
        name,
        str(h.requests),
        str(h.pages),
        str(h.failures),
        format_rate(h.blocked, h.requests),
        str(h.retries),
        _state(h),
        _limits(h),
    ]


def busiest(hosts: dict[str, HostStats]) -> list[tuple[str, HostStats]]:
    return sorted(hosts.items(), key=lambda kv: (-kv[1].requests, kv[0]))


def host_table(
    hosts: dict[str, HostStats],
    *,
    title: str | None = "hosts",
    width: int = 200,
    limit: int | None = None,
    total: int | None = None,
) -> Table:
    """The busiest ``limit`` hosts, and a last row "N more" when ``total`` (the hosts there
    are) is given and more than that."""
    ordered = busiest(hosts)
    shown = ordered if limit is None else ordered[: max(0, limit)]
    rows = [_host_row(name, h) for name, h in shown]
    more = max(len(ordered), total) - len(shown) if total is not None else 0
    if more > 0:
        rows.append([f"... {more} more", *([""] * (len(_HOST_COLUMNS) - 1))])
    return fitted_table(_HOST_COLUMNS, rows, width=width, title=title)


_PROXY_COLUMNS = (
    Column("proxy", right=False),
    Column("pool", right=False, drop=5),
    Column("requests", drop=4),
    Column("failures", drop=2),
    Column("blocks", drop=3),
    Column("bans", drop=6),
    Column("latency", drop=7),
    Column("in use", drop=8),
    Column("state", right=False, drop=1),
)


def proxy_table(
    proxies: dict[str, ProxyStats], *, width: int = 200, limit: int | None = None
) -> Table:
    """Each proxy's use and health; ``in use`` is against its capacity, whole fleet."""
    rows = []
    for url, p in list(proxies.items())[:limit]:
        state: str = p.state
        if p.banned_on:
            state += f", banned on {', '.join(p.banned_on)}"
        rows.append(
            [
                redact(url),
                p.pool + (f" ({', '.join(p.tags)})" if p.tags else ""),
                str(p.requests),
                str(p.failures),
                str(p.blocks),
                str(p.bans),
                f"{p.mean_latency_ms:.0f} ms" if p.responses else "-",
                f"{p.in_use}/{p.capacity}",
                state,
            ]
        )
    if limit is not None and len(proxies) > limit:
        rows.append([f"... {len(proxies) - limit} more", *([""] * (len(_PROXY_COLUMNS) - 1))])
    return fitted_table(_PROXY_COLUMNS, rows, width=width, title="proxies")


def metrics_table(pairs: Sequence[tuple[str, str]], *, width: int) -> Table:
    """Name-value pairs, two pairs a line when the console is wide enough."""
    per_line = 2 if width >= 70 else 1
    grid = Table.grid(padding=(0, 1))
    for _ in range(per_line):
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
    for start in range(0, len(pairs), per_line):
        cells: list[RenderableType] = []
        for name, value in pairs[start : start + per_line]:
            cells += [Text(name), Text(value)]
        grid.add_row(*cells)
    return grid


def note_lines(lines: Iterable[tuple[str, str]]) -> list[Text]:
    """Full-width lines for what may be long (a failure, the store's error, parked hosts)."""
    return [Text.assemble((f"{name}: ", "bold red"), value) for name, value in lines]
