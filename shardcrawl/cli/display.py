"""Terminal rendering of a crawl's live progress (rich), used only by the CLI.

Everything printed from data (ids, states, host names, URLs, errors) goes in as ``Text``,
never as markup, so ``[running]`` or a URL with brackets prints as it is. The live view fits
the console it is drawn on: 80 x 24 shows the state, the progress and the busiest hosts with
their full names; a larger console shows more hosts and wider columns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.text import Text

from shardcrawl.cli.tables import (
    STATE_STYLE,
    format_duration,
    host_table,
    metrics_table,
    note_lines,
    proxy_table,
)
from shardcrawl.core.formatting import format_rate
from shardcrawl.models import CrawlProgress
from shardcrawl.models.timeseries import recent_rate
from shardcrawl.policy.report import top_urls_retry_share

__all__ = [
    "ProgressView",
    "estimate",
    "progress_line",
    "progress_table",
    "store_outage",
]

_LIVE_STATES = ("running", "paused", "finishing")


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
        text += f", eta {format_duration(guess.eta_seconds)}"
    return text


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
            (p.crawl_id, "bold"), "  ", (p.state, STATE_STYLE.get(p.state, "bold"))
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
            ("blocked", f"{format_rate(t.blocked, t.requests)} ({t.blocked}, {t.throttled}x429)"),
            (
                "retries",
                f"{format_rate(t.retries, t.requests)} ({t.retries}, {t.retry_waiting} wait)",
            ),
            ("queued", f"{t.queued:,}"),
            ("in flight", f"{t.in_flight_batches} batches"),
            (
                "duplicates",
                f"{format_rate(t.duplicates, t.links_discovered)} of {t.links_discovered:,}",
            ),
            ("hosts", f"{t.hosts} ({t.parked_hosts} parked, {t.abandoned_hosts} abandoned)"),
            ("robots.txt", f"{t.robots_disallowed} disallowed"),
            ("elapsed", format_duration(p.elapsed_seconds)),
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
                    format_rate(retries_by_host[0], t.retries) if retries_by_host else "-",
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
        return Group(title, *note_lines(notes), metrics_table(pairs, width=width))

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
        f"({progress.pages_per_second:.1f} all)  {format_duration(progress.elapsed_seconds)}"
    )
    if how_far:
        line += f"  {how_far}"
    for name, _ in fleet_waits(progress):
        line += f"  {name}"
    outage = store_outage(progress, now=now)
    return f"{line}  store {outage}" if outage else line
