"""Terminal rendering of a crawl's progress and report (rich), used only by the CLI."""

from __future__ import annotations

from rich.table import Table

from shardcrawl.contracts import CrawlProgress, CrawlReport

__all__ = ["progress_line", "progress_table", "report_table"]


def progress_table(progress: CrawlProgress) -> Table:
    t = progress.totals
    table = Table(title=f"{progress.crawl_id}  [{progress.state}]", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    rows = [
        ("pages fetched", f"{t.pages} / max {progress.max_pages}"),
        ("requests", str(t.requests)),
        ("failures", str(t.failures)),
        ("blocked (403/429)", str(t.blocked)),
        ("robots.txt disallowed", str(t.robots_disallowed)),
        ("links discovered", str(t.links_discovered)),
        ("duplicates skipped", str(t.duplicates)),
        ("queued", str(t.queued)),
        ("batches in flight", str(t.in_flight_batches)),
        ("batches done (retried)", f"{t.batches} ({t.batch_retries})"),
        ("hosts", str(t.hosts)),
        ("pages/s", f"{progress.pages_per_second:.1f}"),
        ("elapsed", f"{progress.elapsed_seconds:.1f} s"),
        ("seen-set memory", f"{t.seen_set_bytes / 1e6:.1f} MB ({t.seen} URLs)"),
        ("history events, crawl run", str(progress.history_length)),
        ("history events, longest shard run", str(t.history_length)),
        ("largest payload", f"{max(t.largest_payload_bytes, progress.largest_payload_bytes):,} B"),
        ("continue-as-new (crawl + shards)", str(progress.continued_as_new + t.continued_as_new)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def progress_line(progress: CrawlProgress) -> str:
    t = progress.totals
    return (
        f"[{progress.state}] pages {t.pages}/{progress.max_pages}  failures {t.failures}  "
        f"queued {t.queued}  in flight {t.in_flight_batches}  "
        f"{progress.pages_per_second:.1f} pages/s  {progress.elapsed_seconds:.0f}s"
    )


def report_table(report: CrawlReport, *, max_hosts: int = 20) -> Table:
    table = Table(title=f"{report.crawl_id}: {report.status}", show_header=False)
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
        ("block rate", f"{report.block_rate:.1%}"),
        ("retries (URL / batch)", f"{report.retries} / {report.batch_retries}"),
        ("robots.txt disallowed", str(report.robots_disallowed)),
        ("out of scope / too deep", f"{report.out_of_scope} / {report.too_deep}"),
        ("left unfetched", str(report.unfetched)),
        ("elapsed", f"{report.elapsed_seconds:.1f} s ({report.pages_per_second:.1f} pages/s)"),
        ("output", report.output),
    ]
    for name, value in rows:
        table.add_row(name, value)
    for host, stats in list(report.hosts.items())[:max_hosts]:
        table.add_row(
            f"  {host}",
            f"{stats.pages} pages, {stats.failures} failures, {stats.duplicates} dup links",
        )
    more = len(report.hosts) - min(len(report.hosts), max_hosts) + report.hosts_omitted
    if more:
        table.add_row("  ...", f"{more} more hosts in report.json")
    return table
