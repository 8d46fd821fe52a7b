"""``OUT/ID/report.html``: the crawl report as one self-contained page.

The charts are SVG written here, from the time series the shards recorded (one point per
bucket), not a JavaScript charting library: nothing to vendor, update or fetch, a page of
tens of kilobytes that opens from disk or S3, prints, and still renders in twenty years. The
only script sorts the hosts table when a column header is clicked; the page reads fine
without it. Everything from data is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from shardcrawl.core.formatting import format_rate
from shardcrawl.core.layout import shown_location
from shardcrawl.core.proxy_urls import redact
from shardcrawl.models import CrawlReport, HostStats
from shardcrawl.models.timeseries import TimeSeries

__all__ = ["CHARTS", "render_report_html"]

WIDTH, HEIGHT = 720, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 26
COLORS = ("#2b6cb0", "#38a169", "#d69e2e", "#e53e3e", "#805ad5", "#718096")

CHARTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("pages", "pages/s", ("pages",)),
    ("statuses", "responses by status class, per bucket", ("2xx", "3xx", "4xx", "5xx")),
    ("trouble", "blocks, retries and failures, per bucket", ("blocked", "retries", "failures")),
    ("queue", "queue depth (URLs waiting)", ("queued",)),
)
"""Each chart: its id, its title, and its series (names as the legend shows them)."""
_FIELD = {"2xx": "status_2xx", "3xx": "status_3xx", "4xx": "status_4xx", "5xx": "status_5xx"}

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#1a202c}
body{padding:0 12px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#4a5568;margin-bottom:16px}
.numbers{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:6px 16px}
.numbers div{border-bottom:1px solid #e2e8f0;padding:2px 0}
.numbers b{display:block;font-size:12px;color:#4a5568;font-weight:600}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid #e2e8f0;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{cursor:pointer;user-select:none;background:#f7fafc}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.state-parked,.state-probing{color:#b7791f}.state-abandoned{color:#c53030}
svg{display:block;max-width:100%;height:auto}
svg text{font-size:11px;fill:#4a5568}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.none{color:#718096}
"""

_SORT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var down = th.getAttribute("aria-sort") !== "descending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
        var n = parseFloat(x) - parseFloat(y);
        var order = isNaN(n) ? String(x).localeCompare(String(y)) : n;
        return down ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _values(series: TimeSeries, name: str) -> list[float]:
    if name == "pages":
        return [v / series.bucket_seconds for v in series.column("pages")]
    return [float(v) for v in series.column(_FIELD.get(name, name))]


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:.2g}"


def _chart(chart_id: str, title: str, names: Sequence[str], report: CrawlReport) -> str:
    """One SVG line chart: a polyline per series, one point per bucket."""
    series = report.timeseries
    lines = {name: _values(series, name) for name in names}
    if not series.count:
        return f'<p class="none" id="chart-{chart_id}">no time series recorded</p>'
    peak = max([1.0, *(max(v) for v in lines.values())])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, series.count - 1)
    start = report.started_at.timestamp()
    times = series.times()
    parts = [
        f'<svg class="chart" id="chart-{chart_id}" data-buckets="{series.count}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'stroke="#a0aec0"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#a0aec0"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{_number(peak)}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 6}">{_clock(times[0] - start)}</text>',
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{_clock(times[-1] + series.bucket_seconds - start)} "
        f"({series.bucket_seconds} s buckets)</text>",
    ]
    for color, (name, values) in zip(COLORS, lines.items(), strict=False):
        points = " ".join(
            f"{LEFT + i * step:.1f},{TOP + plot_h - v / peak * plot_h:.1f}"
            for i, v in enumerate(values)
        )
        parts.append(
            f'<polyline class="series" data-series="{escape(name)}" fill="none" '
            f'stroke="{color}" stroke-width="1.5" points="{points}"/>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{color}"></i>{escape(name)}</span>'
        for color, name in zip(COLORS, names, strict=False)
    )
    return f'<h2>{escape(title)}</h2>{"".join(parts)}<div class="legend">{legend}</div>'


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _cell(text: str, sort: str | float | None = None) -> str:
    key = text if sort is None else sort
    return f'<td data-sort="{escape(str(key))}">{escape(text)}</td>'


def _spread(proxies: dict[str, int]) -> str:
    """A host's requests per proxy, busiest first (``direct`` when none went through one)."""
    if not proxies:
        return "direct"
    ranked = sorted(proxies.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{redact(url)} {n:,}" for url, n in ranked)


def _host_rows(hosts: dict[str, HostStats]) -> str:
    rows = []
    for name, h in sorted(hosts.items(), key=lambda kv: (-kv[1].requests, kv[0])):
        block_rate = h.blocked / h.requests if h.requests else 0.0
        state = f"{h.state} ({h.parks} parks)" if h.parks else h.state
        rows.append(
            f'<tr class="state-{escape(h.state)}">'
            + _cell(name)
            + _cell(f"{h.requests:,}", h.requests)
            + _cell(f"{h.pages:,}", h.pages)
            + _cell(f"{h.failures:,}", h.failures)
            + _cell(format_rate(h.blocked, h.requests), block_rate)
            + _cell(f"{h.throttled:,}", h.throttled)
            + _cell(f"{h.retries:,}", h.retries)
            + _cell(f"{h.gave_up:,}", h.gave_up)
            + _cell(state)
            + _cell(_spread(h.proxies), len(h.proxies))
            + "</tr>"
        )
    return "".join(rows)


def _table(table_id: str, headers: Sequence[str], body: str, *, sortable: bool = False) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    css = ' class="sortable"' if sortable else ""
    return (
        f'<table id="{table_id}"{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _counts(table_id: str, what: str, counts: dict[str, int]) -> str:
    if not counts:
        return f'<p class="none" id="{table_id}">none</p>'
    total = sum(counts.values())
    body = "".join(
        f"<tr>{_cell(k)}{_cell(f'{v:,}', v)}{_cell(format_rate(v, total), v)}</tr>"
        for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return _table(table_id, (what, "URLs", "share"), body, sortable=True)


def _proxies(report: CrawlReport) -> str:
    if not report.proxies:
        return '<p class="none" id="proxies">none: every request went direct</p>'
    rows = []
    for url, p in report.proxies.items():
        state = p.state + (f", banned on {', '.join(p.banned_on)}" if p.banned_on else "")
        latency = f"{p.mean_latency_ms:.0f} ms" if p.responses else "-"
        rows.append(
            "<tr>"
            + _cell(url)
            + _cell(p.pool)
            + _cell(f"{p.requests:,}", p.requests)
            + _cell(f"{p.failures:,}", p.failures)
            + _cell(f"{p.blocks:,}", p.blocks)
            + _cell(f"{p.bans:,}", p.bans)
            + _cell(latency, p.mean_latency_ms)
            + _cell(state)
            + "</tr>"
        )
    headers = ("proxy", "pool", "requests", "failures", "blocks", "bans", "latency", "state")
    return _table("proxies", headers, "".join(rows), sortable=True)


def _numbers(report: CrawlReport) -> str:
    pairs = [
        ("pages fetched", f"{report.pages_fetched:,}"),
        ("requests", f"{report.requests:,}"),
        ("failures", f"{report.failures:,}"),
        ("pages/s", f"{report.pages_per_second:.1f}"),
        ("elapsed", _clock(report.elapsed_seconds)),
        ("block rate", f"{report.block_rate:.1%} ({report.blocked:,})"),
        ("429s", f"{report.throttled:,}"),
        ("retry rate", f"{report.retry_rate:.1%} ({report.retries:,})"),
        ("batch retries", f"{report.batch_retries:,}"),
        ("retries on the top host", f"{report.retry_concentration:.1%}"),
        ("retries on the top 1% URLs", f"{report.retry_concentration_top_urls:.1%}"),
        ("given up", f"{report.gave_up:,}"),
        ("duplicate rate", f"{report.duplicate_rate:.1%} of {report.links_discovered:,}"),
        ("robots.txt disallowed", f"{report.robots_disallowed:,}"),
        ("out of scope / too deep", f"{report.out_of_scope:,} / {report.too_deep:,}"),
        ("left unfetched", f"{report.unfetched:,}"),
        ("parked hosts", ", ".join(report.parked_hosts) or "-"),
        ("abandoned hosts", ", ".join(report.abandoned_hosts) or "-"),
    ]
    if report.previous_crawl:
        pairs.append(
            (
                f"against {report.previous_crawl}",
                f"{report.pages_new} new, {report.pages_changed} changed, "
                f"{report.pages_unchanged} unchanged, {report.pages_gone} gone",
            )
        )
    cells = "".join(f"<div><b>{escape(k)}</b>{escape(v)}</div>" for k, v in pairs)
    return f'<div class="numbers">{cells}</div>'


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def render_report_html(report: CrawlReport) -> str:
    """The whole page: summary numbers, charts over time, hosts, failures, statuses, proxies."""
    omitted = (
        f" ({report.hosts_omitted:,} more hosts in report.json)" if report.hosts_omitted else ""
    )
    host_headers = (
        "host", "requests", "pages", "failures", "block rate", "429s", "retries", "given up",
        "state", "requests per proxy",
    )  # fmt: skip
    charts = "".join(_chart(chart_id, title, names, report) for chart_id, title, names in CHARTS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(report.crawl_id)}: {escape(report.status)}</title>
<style>{_STYLE}</style></head><body>
<h1>{escape(report.crawl_id)}: {escape(report.status)}</h1>
<div class="meta">{escape(_when(report.started_at))} to {escape(_when(report.finished_at))},
output {escape(shown_location(report.output))}</div>
{_numbers(report)}
{charts}
<h2>hosts{escape(omitted)}</h2>
{_table("hosts", host_headers, _host_rows(report.hosts), sortable=True)}
<h2>failure classes</h2>
{_counts("failure-classes", "failure", report.failure_classes)}
<h2>status codes</h2>
{_counts("status-codes", "status", report.status_counts)}
<h2>proxies</h2>
{_proxies(report)}
<script>{_SORT}</script>
</body></html>
"""
