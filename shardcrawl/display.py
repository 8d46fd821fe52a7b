"""Terminal rendering of a crawl's progress and report (rich), used only by the CLI."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from shardcrawl.contracts import CrawlProgress, CrawlReport, HostStats, ProxyStats
from shardcrawl.proxy_urls import redact
from shardcrawl.report import top_urls_retry_share

__all__ = [
    "host_table",
    "progress_line",
    "progress_table",
    "proxy_table",
    "report_table",
    "shown_location",
    "store_outage",
]


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def shown_location(url: str) -> str:
    """A local output as the path a person types (/data/crawls), other stores as URLs."""
    if url.startswith("file://"):
        return unquote(urlsplit(url).path) or "/"
    return url


def store_outage(progress: CrawlProgress, *, now: float | None = None) -> str | None:
    """'down since 21:04:05 UTC (95 s): <the store's error>' while the crawl waits on its
    store, else None."""
    since = progress.totals.store_down_since
    if not since:
        return None
    waited = max(0.0, (time.time() if now is None else now) - since)
    clock = datetime.fromtimestamp(since, tz=UTC).strftime("%H:%M:%S UTC")
    return f"down since {clock} ({waited:.0f} s): {progress.totals.store_down_cause}"


def progress_table(progress: CrawlProgress) -> Group:
    """The crawl's live state and health, and a table of its busiest and parked hosts."""
    t = progress.totals
    # Everything from data goes through escape(): rich would read "[running]" as markup.
    table = Table(title=escape(f"{progress.crawl_id}  [{progress.state}]"), show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    retries_by_host = sorted((h.retries for h in progress.hosts.values()), reverse=True)
    parked = [n for n, h in progress.hosts.items() if h.state in ("parked", "probing")]
    rows = [
        ("pages fetched", f"{t.pages} / max {progress.max_pages}"),
        ("pages/s", f"{progress.pages_per_second:.1f}"),
        ("requests", str(t.requests)),
        ("failures", str(t.failures)),
        ("duplicate rate", f"{_rate(t.duplicates, t.links_discovered)} of {t.links_discovered}"),
        ("block rate", f"{_rate(t.blocked, t.requests)} ({t.blocked} blocked, {t.throttled} 429)"),
        ("retry rate", f"{_rate(t.retries, t.requests)} ({t.retries} retries)"),
        (
            "retries on the top host",
            _rate(retries_by_host[0], t.retries) if retries_by_host else "-",
        ),
        (
            "retries on the top 1% URLs",
            f"{top_urls_retry_share(t.retry_histogram, t.pages + t.failures):.1%}",
        ),
        ("retries waiting", str(t.retry_waiting)),
        ("parked hosts", ", ".join(parked) or str(t.parked_hosts)),
        ("abandoned hosts", str(t.abandoned_hosts)),
        ("robots.txt disallowed", str(t.robots_disallowed)),
        ("queued", str(t.queued)),
        ("batches in flight", str(t.in_flight_batches)),
        ("batches done (retried)", f"{t.batches} ({t.batch_retries})"),
        ("hosts", str(t.hosts)),
        ("elapsed", f"{progress.elapsed_seconds:.1f} s"),
        ("seen-set memory", f"{t.seen_set_bytes / 1e6:.1f} MB ({t.seen} URLs)"),
        ("history events, crawl run", str(progress.history_length)),
        ("history events, longest shard run", str(t.history_length)),
        ("largest payload", f"{max(t.largest_payload_bytes, progress.largest_payload_bytes):,} B"),
        ("continue-as-new (crawl + shards)", str(progress.continued_as_new + t.continued_as_new)),
    ]
    if t.pages_new + t.pages_changed + t.pages_unchanged + t.pages_gone:
        rows.append(
            (
                "new / changed / unchanged / gone",
                f"{t.pages_new} / {t.pages_changed} / {t.pages_unchanged} / {t.pages_gone}",
            )
        )
    outage = store_outage(progress)
    if outage:
        rows.insert(0, ("waiting on the store", outage))
    if progress.failure:
        rows.insert(0, ("failed", progress.failure))
    for name, value in rows:
        table.add_row(name, escape(value))
    parts = [table, host_table(progress.hosts)]
    if progress.proxies:
        parts.append(proxy_table(progress.proxies))
    return Group(*parts)


def proxy_table(proxies: dict[str, ProxyStats]) -> Table:
    """Each proxy's use and health; ``in use`` is against its capacity, whole fleet."""
    table = Table(title="proxies")
    columns = ("proxy", "pool", "requests", "failures", "blocks", "bans", "latency", "in use")
    for column in (*columns, "state"):
        table.add_column(
            column, justify="left" if column in ("proxy", "pool", "state") else "right"
        )
    for url, p in proxies.items():
        state: str = p.state
        if p.banned_on:
            state += f", banned on {', '.join(p.banned_on)}"
        table.add_row(
            escape(redact(url)),
            escape(p.pool + (f" ({', '.join(p.tags)})" if p.tags else "")),
            str(p.requests),
            str(p.failures),
            str(p.blocks),
            str(p.bans),
            f"{p.mean_latency_ms:.0f} ms" if p.responses else "-",
            f"{p.in_use}/{p.capacity}",
            escape(state),
        )
    return table


def host_table(hosts: dict[str, HostStats], *, title: str = "hosts") -> Table:
    table = Table(title=title)
    for column in ("host", "requests", "pages", "failures", "block rate", "retries", "state"):
        table.add_column(column, justify="left" if column in ("host", "state") else "right")
    table.add_column("now", justify="right")
    for name, h in sorted(hosts.items(), key=lambda kv: (-kv[1].requests, kv[0])):
        table.add_row(
            escape(name),
            str(h.requests),
            str(h.pages),
            str(h.failures),
            _rate(h.blocked, h.requests),
            str(h.retries),
            f"{h.state} ({h.parks} parks)" if h.parks else h.state,
            f"{h.concurrency} x {h.delay_seconds:g} s" if h.concurrency else "-",
        )
    return table


def progress_line(progress: CrawlProgress) -> str:
    t = progress.totals
    line = (
        f"[{progress.state}] pages {t.pages}/{progress.max_pages}  failures {t.failures}  "
        f"queued {t.queued}  in flight {t.in_flight_batches}  "
        f"{progress.pages_per_second:.1f} pages/s  {progress.elapsed_seconds:.0f}s"
    )
    outage = store_outage(progress)
    return f"{line}  store {outage}" if outage else line


def report_table(report: CrawlReport, *, max_hosts: int = 20) -> Group:
    table = Table(title=escape(f"{report.crawl_id}: {report.status}"), show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    failures = ", ".join(f"{k} {v}" for k, v in report.failure_classes.items()) or "none"
    statuses = ", ".join(f"{k}: {v}" for k, v in report.status_counts.items()) or "none"
    rows = [
        ("pages fetched", str(report.pages_fetched)),
        ("status codes", statuses),
        ("failures", f"{report.failures} ({failures})"),
        ("duplicates skipped", f"{report.duplicates_skipped} of {report.links_discovered} links"),
        ("duplicate rate", f"{report.duplicate_rate:.1%}"),
        ("block rate", f"{report.block_rate:.1%} ({report.blocked} blocked)"),
        ("retries (URL / batch)", f"{report.retries} / {report.batch_retries}"),
        ("retry rate", f"{report.retry_rate:.1%}"),
        ("retries on the top host", f"{report.retry_concentration:.1%}"),
        ("retries on the top 1% URLs", f"{report.retry_concentration_top_urls:.1%}"),
        ("given up (still retryable)", str(report.gave_up)),
        (
            "parked / abandoned hosts",
            f"{', '.join(report.parked_hosts) or '-'} / {', '.join(report.abandoned_hosts) or '-'}",
        ),
        ("robots.txt disallowed", str(report.robots_disallowed)),
        ("out of scope / too deep", f"{report.out_of_scope} / {report.too_deep}"),
        ("left unfetched", str(report.unfetched)),
        ("elapsed", f"{report.elapsed_seconds:.1f} s ({report.pages_per_second:.1f} pages/s)"),
        ("output", shown_location(report.output)),
    ]
    if report.previous_crawl:
        rows.append(
            (
                f"against {report.previous_crawl}",
                f"{report.pages_new} new, {report.pages_changed} changed, "
                f"{report.pages_unchanged} unchanged, {report.pages_gone} gone",
            )
        )
    if report.warc_files:
        rows.append(
            (
                "WARC",
                f"{report.warc_records} records, {report.warc_bytes:,} bytes "
                f"in {report.warc_files} files",
            )
        )
    for name, value in rows:
        table.add_row(name, escape(value))
    busiest = sorted(report.hosts.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    more = len(report.hosts) - min(len(report.hosts), max_hosts) + report.hosts_omitted
    title = f"hosts ({more} more in report.json)" if more else "hosts"
    parts = [table, host_table(dict(busiest[:max_hosts]), title=title)]
    if report.proxies:
        parts.append(proxy_table(report.proxies))
    return Group(*parts)
