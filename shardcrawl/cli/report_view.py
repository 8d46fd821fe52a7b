"""The final report in the terminal, apart from the live view: it prints once, at the end."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from shardcrawl.cli.tables import (
    STATE_STYLE,
    format_duration,
    host_table,
    metrics_table,
    proxy_table,
)
from shardcrawl.core.layout import shown_location
from shardcrawl.models import CrawlReport

__all__ = ["ReportView", "report_table"]


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
            (report.status, STATE_STYLE.get(report.status, "bold")),
        )
        failures = ", ".join(f"{k} {v}" for k, v in report.failure_classes.items()) or "none"
        statuses = ", ".join(f"{k}: {v}" for k, v in report.status_counts.items()) or "none"
        pairs = [
            ("pages fetched", f"{report.pages_fetched:,}"),
            (
                "elapsed",
                f"{format_duration(report.elapsed_seconds)} "
                f"({report.pages_per_second:.1f} pages/s)",
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
        yield metrics_table(pairs, width=width)
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
