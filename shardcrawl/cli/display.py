"""Terminal rendering of a crawl's progress and report (rich), used only by the CLI.

Everything printed from data (ids, states, host names, URLs, errors) goes in as ``Text``,
never as markup, so ``[running]`` or a URL with brackets prints as it is. The live view fits
the console it is drawn on: 80 x 24 shows the state, the progress and the busiest hosts with
their full names; a larger console shows more hosts and wider columns.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from shardcrawl.core.layout import shown_location
from shardcrawl.core.proxy_urls import redact
from shardcrawl.models import CrawlProgress, CrawlReport, HostStats, ProxyStats
from shardcrawl.models.timeseries import recent_rate
from shardcrawl.policy.report import top_urls_retry_share

__all__ = [
    "Column",
    "ProgressView",
    "estimate",
    "fitted_table",
    "host_table",
    "progress_line",
    "progress_table",
    "proxy_table",
    "report_table",
    "store_outage",
]

_LIVE_STATES = ("running", "paused", "finishing")
_STATE_STYLE = {
    "running": "bold green",
    "paused": "bold yellow",
    "finishing": "bold cyan",
    "completed": "bold green",
    "cancelled": "bold yellow",
    "failed": "bold red",
}


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def store_outage(progress: CrawlProgress, *, now: float | None = None) -> str | None:
    """'down since 21:04:05 UTC (95 s): <the store's error>' while the crawl waits on its
    store, else None."""
    since = progress.totals.store_down_since
    if not since:
        return None
    waited = max(0.0, (time.time() if now is None else now) - since)
    clock = datetime.fromtimestamp(since, tz=UTC).strftime("%H:%M:%S UTC")
    return f"down since {clock} ({waited:.0f} s): {progress.totals.store_down_cause}"


def fleet_waits(progress: CrawlProgress) -> list[tuple[str, str]]:
    """('waiting for fleet eu', 'no worker polls ...') for each fleet with work and no
    worker: the crawl does not end meanwhile, so say what would unblock it."""
    waits = []
    for name, fleet in progress.fleets.items():
        if not fleet.waiting:
            continue
        oldest = f", the oldest {fleet.backlog_age_seconds:.0f} s" if fleet.backlog else ""
        waits.append(
            (
                f"waiting for fleet {name}",
                f"{fleet.in_flight} fetch activities{oldest}; no worker polls task queue "
                f"{fleet.task_queue} (start one: shardcrawl worker --fetch-queue {name}, "
                "on the crawl's SHARDCRAWL_TASK_QUEUE)",
            )
        )
    return waits


def _fleets(progress: CrawlProgress) -> str:
    """'eu 2 workers 3 in flight (1 not taken, 4 s)', a fleet after another."""
    shown = []
    for name, f in progress.fleets.items():
        backlog = f" ({f.backlog} not taken, {f.backlog_age_seconds:.0f} s)" if f.backlog else ""
        shown.append(f"{name} {f.workers} workers {f.in_flight} in flight{backlog}")
    return ", ".join(shown)


@dataclass(frozen=True)
class Estimate:
    """How far along a live crawl is: ``done`` URLs of ``total`` known (queued, waiting for a
    retry, in flight, capped by the page limit); ``eta_seconds`` at the last minute's rate."""

    done: int
    total: int
    recent_pages_per_second: float
    eta_seconds: float | None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


def estimate(progress: CrawlProgress, *, now: float | None = None) -> Estimate:
    """Known work only: links not found yet are not counted, so the share can fall back as
    pages bring new links. A batch in flight counts as one URL (at least that is left)."""
    t = progress.totals
    now = time.time() if now is None else now
    done = t.pages + t.failures
    left = t.queued + t.retry_waiting + t.in_flight_batches
    if progress.max_pages:
        left = min(left, max(0, progress.max_pages - done))
    rate = recent_rate(t.recent_pages, now, elapsed_seconds=progress.elapsed_seconds)
    eta = left / rate if rate > 0 and progress.state == "running" else None
    return Estimate(done=done, total=done + left, recent_pages_per_second=rate, eta_seconds=eta)


def _how_far(progress: CrawlProgress, guess: Estimate) -> str:
    if progress.state not in _LIVE_STATES:
        return ""
    text = f"{guess.fraction:.0%} of {guess.total:,} known URLs"
    if guess.eta_seconds is not None:
        text += f", eta {_duration(guess.eta_seconds)}"
    return text


# -- tables that fit ---------------------------------------------------------------------------


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
        _rate(h.blocked, h.requests),
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


def _metrics(pairs: Sequence[tuple[str, str]], *, width: int) -> Table:
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


def _notes(lines: Iterable[tuple[str, str]]) -> list[Text]:
    """Full-width lines for what may be long (a failure, the store's error, parked hosts)."""
    return [Text.assemble((f"{name}: ", "bold red"), value) for name, value in lines]


# -- the live view -----------------------------------------------------------------------------


class ProgressView:
    """A crawl's live state and health over its busiest hosts, sized to the console: as many
    hosts as fit in its height, with their full names; ``verbose`` adds the internals
    (history sizes, payloads, continue-as-new, seen-set memory)."""

    def __init__(
        self, progress: CrawlProgress, *, verbose: bool = False, now: float | None = None
    ) -> None:
        self.progress = progress
        self.verbose = verbose
        self.now = time.time() if now is None else now

    def header(self, width: int) -> Group:
        p, t = self.progress, self.progress.totals
        guess = estimate(p, now=self.now)
        title = Text.assemble(
            (p.crawl_id, "bold"), "  ", (p.state, _STATE_STYLE.get(p.state, "bold"))
        )
        how_far = _how_far(p, guess)
        if how_far:
            title.append(f"  {how_far}")
        notes: list[tuple[str, str]] = []
        if p.failure:
            notes.append(("failed", p.failure))
        outage = store_outage(p, now=self.now)
        if outage:
            notes.append(("waiting on the store", outage))
        notes += fleet_waits(p)
        parked = [n for n, h in p.hosts.items() if h.state in ("parked", "probing")]
        if parked:
            notes.append(("parked", ", ".join(parked)))
        limit = f" / max {p.max_pages:,}" if p.max_pages else ""
        recent = guess.recent_pages_per_second
        pairs = [
            ("pages", f"{t.pages:,}{limit}"),
            ("pages/s", f"{recent:.1f} last min, {p.pages_per_second:.1f} all"),
            ("requests", f"{t.requests:,}"),
            ("failures", f"{t.failures:,}"),
            ("blocked", f"{_rate(t.blocked, t.requests)} ({t.blocked}, {t.throttled}x429)"),
            ("retries", f"{_rate(t.retries, t.requests)} ({t.retries}, {t.retry_waiting} wait)"),
            ("queued", f"{t.queued:,}"),
            ("in flight", f"{t.in_flight_batches} batches"),
            ("duplicates", f"{_rate(t.duplicates, t.links_discovered)} of {t.links_discovered:,}"),
            ("hosts", f"{t.hosts} ({t.parked_hosts} parked, {t.abandoned_hosts} abandoned)"),
            ("robots.txt", f"{t.robots_disallowed} disallowed"),
            ("elapsed", _duration(p.elapsed_seconds)),
        ]
        if p.fleets:
            pairs.append(("fleets", _fleets(p)))
        if t.pages_new + t.pages_changed + t.pages_unchanged + t.pages_gone:
            pairs.append(
                (
                    "new/chg/same/gone",
                    f"{t.pages_new}/{t.pages_changed}/{t.pages_unchanged}/{t.pages_gone}",
                )
            )
        if self.verbose:
            retries_by_host = sorted((h.retries for h in p.hosts.values()), reverse=True)
            pairs += [
                ("batches", f"{t.batches} ({t.batch_retries} retried)"),
                ("seen-set", f"{t.seen_set_bytes / 1e6:.1f} MB ({t.seen:,} URLs)"),
                (
                    "retries, top host",
                    _rate(retries_by_host[0], t.retries) if retries_by_host else "-",
                ),
                (
                    "retries, top 1%",
                    f"{top_urls_retry_share(t.retry_histogram, t.pages + t.failures):.1%}",
                ),
                ("history, crawl", f"{p.history_length:,} events"),
                ("history, shard", f"{t.history_length:,} events (longest run)"),
                (
                    "largest payload",
                    f"{max(t.largest_payload_bytes, p.largest_payload_bytes):,} B",
                ),
                ("continued as new", f"{p.continued_as_new + t.continued_as_new} (crawl + shards)"),
            ]
        return Group(title, *_notes(notes), _metrics(pairs, width=width))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        header = self.header(width)
        yield header
        hosts = self.progress.hosts
        if not hosts and not self.progress.proxies:
            return
        # One line is left for the cursor; a table costs its header and rule (and the
        # proxies' its title), and the hosts' a line for "N more".
        used = len(console.render_lines(header, options.update(height=None), pad=False))
        room = options.max_height - used - 1
        proxies = self.progress.proxies
        proxy_rows = 0
        if proxies:
            proxy_rows = min(len(proxies), max(1, (room - 3) // 3))
            room -= proxy_rows + 3 + (len(proxies) > proxy_rows)
        if hosts and room > 2:
            total = self.progress.totals.hosts
            fit = room - 2
            limit = fit if len(hosts) <= fit and total <= len(hosts) else fit - 1
            yield host_table(hosts, title=None, width=width, limit=limit, total=total)
        if proxies and proxy_rows:
            yield proxy_table(proxies, width=width, limit=proxy_rows)


def progress_table(progress: CrawlProgress, *, verbose: bool = False) -> ProgressView:
    return ProgressView(progress, verbose=verbose)


def progress_line(progress: CrawlProgress, *, now: float | None = None) -> str:
    """One line of progress, for output that is not a terminal (logs, CI)."""
    t = progress.totals
    guess = estimate(progress, now=now)
    how_far = _how_far(progress, guess)
    line = (
        f"{progress.state}: pages {t.pages}/{progress.max_pages}  failures {t.failures}  "
        f"queued {t.queued}  in flight {t.in_flight_batches}  "
        f"{guess.recent_pages_per_second:.1f} pages/s last min "
        f"({progress.pages_per_second:.1f} all)  {_duration(progress.elapsed_seconds)}"
    )
    if how_far:
        line += f"  {how_far}"
    for name, _ in fleet_waits(progress):
        line += f"  {name}"
    outage = store_outage(progress, now=now)
    return f"{line}  store {outage}" if outage else line


# -- the final report --------------------------------------------------------------------------


class ReportView:
    """The final report, once: its numbers, the busiest hosts (if any), the proxies."""

    def __init__(self, report: CrawlReport, *, max_hosts: int = 20) -> None:
        self.report = report
        self.max_hosts = max_hosts

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        report, width = self.report, options.max_width
        yield Text.assemble(
            (report.crawl_id, "bold"),
            ": ",
            (report.status, _STATE_STYLE.get(report.status, "bold")),
        )
        failures = ", ".join(f"{k} {v}" for k, v in report.failure_classes.items()) or "none"
        statuses = ", ".join(f"{k}: {v}" for k, v in report.status_counts.items()) or "none"
        pairs = [
            ("pages fetched", f"{report.pages_fetched:,}"),
            (
                "elapsed",
                f"{_duration(report.elapsed_seconds)} ({report.pages_per_second:.1f} pages/s)",
            ),
            ("requests", f"{report.requests:,}"),
            ("block rate", f"{report.block_rate:.1%} ({report.blocked} blocked)"),
            ("retries", f"{report.retries} URL, {report.batch_retries} batch"),
            ("retry rate", f"{report.retry_rate:.1%}"),
            ("duplicates", f"{report.duplicate_rate:.1%} of {report.links_discovered:,} links"),
            ("given up", str(report.gave_up)),
            ("robots.txt", f"{report.robots_disallowed} disallowed"),
            ("out of scope", f"{report.out_of_scope} ({report.too_deep} too deep)"),
            ("left unfetched", str(report.unfetched)),
            ("top-host retries", f"{report.retry_concentration:.1%}"),
        ]
        yield _metrics(pairs, width=width)
        lines = [
            ("status codes", statuses),
            ("failures", f"{report.failures} ({failures})"),
        ]
        if report.parked_hosts or report.abandoned_hosts:
            lines.append(
                (
                    "parked / abandoned",
                    f"{', '.join(report.parked_hosts) or '-'} / "
                    f"{', '.join(report.abandoned_hosts) or '-'}",
                )
            )
        if report.previous_crawl:
            lines.append(
                (
                    f"against {report.previous_crawl}",
                    f"{report.pages_new} new, {report.pages_changed} changed, "
                    f"{report.pages_unchanged} unchanged, {report.pages_gone} gone"
                    + (
                        f", {report.pages_carried} carried over by sitemap lastmod"
                        if report.pages_carried
                        else ""
                    ),
                )
            )
        if report.filtered_by_rule:
            rules = ", ".join(f"{k} {v}" for k, v in report.filtered_by_rule.items())
            lines.append(("URL rules filtered", rules))
        if report.quota_hosts:
            shown = ", ".join(report.quota_hosts[:5])
            rest = len(report.quota_hosts) - 5
            others = f" and {rest} more" if rest > 0 else ""
            lines.append(("at their quota", f"{shown}{others} ({report.over_quota} URLs left out)"))
        if report.spider_errors:
            raised = ", ".join(f"{k} {v}" for k, v in report.spider_errors.items())
            lines.append(("callbacks raised", raised))
        if report.sitemaps_fetched or report.sitemap_errors:
            errors = ", ".join(f"{k} {v}" for k, v in report.sitemap_errors.items()) or "none"
            lines.append(
                (
                    "sitemaps",
                    f"{report.sitemaps_fetched} read, {report.sitemap_urls:,} URLs listed "
                    f"(problems: {errors})",
                )
            )
        if report.warc_files:
            lines.append(
                (
                    "WARC",
                    f"{report.warc_records} records, {report.warc_bytes:,} bytes "
                    f"in {report.warc_files} files",
                )
            )
        lines.append(("output", shown_location(report.output)))
        for name, value in lines:
            yield Text.assemble((f"{name}: ", "bold"), value)
        if report.hosts:
            more = max(0, len(report.hosts) - self.max_hosts) + report.hosts_omitted
            title = f"hosts ({more} more in report.json)" if more else "hosts"
            yield host_table(report.hosts, title=title, width=width, limit=self.max_hosts)
        if report.proxies:
            yield proxy_table(report.proxies, width=width)


def report_table(report: CrawlReport, *, max_hosts: int = 20) -> ReportView:
    return ReportView(report, max_hosts=max_hosts)
