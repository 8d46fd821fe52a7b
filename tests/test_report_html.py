"""report.html of a real crawl (blocks, retries, 429s, refused connections, a host given up
on), in a real browser: headless Chromium renders it with no console error and no request
beyond the file itself, each chart has one point per bucket of the recorded time series, the
hosts table one row per host and sorts; a screenshot is kept in the test's folder."""

from __future__ import annotations

import asyncio
import json
import re
import sys

import pytest

from shardcrawl.activities.report_html import CHARTS
from shardcrawl.models.timeseries import TimeSeries
from tests.chromium import Chromium, chromium_binary
from tests.helpers import read_report, shardcrawl
from tests.moody_site import MoodySite

IPS = {
    "home": "127.0.5.8",
    "flaky": "127.0.5.9",
    "throttle": "127.0.5.10",
    "blocker": "127.0.5.11",
    "down": "127.0.5.12",
}


@pytest.fixture
def site(tmp_path):
    moody = MoodySite(IPS, tmp_path / "moody.jsonl")
    yield moody
    moody.close()


async def test_report_html_in_a_browser(cli_env, workers, site, tmp_path):
    binary = chromium_binary()
    assert binary, "chromium is not installed (.ci/run installs it: apt-get install chromium)"
    workers.start(1)
    out = tmp_path / "out"
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "seeds": [site.seed],
                "allowed_domains": list(IPS.values()),
                "concurrency_per_host": 2,
                "batch_size": 4,
                "shards": 2,
                "output": str(out),
                "allow_private_networks": True,
                "retry": {"max_attempts": 3, "backoff_base_seconds": 0.5},
                # Parks of 5 s, then 10 s, before the blocker is given up on at its third:
                # the crawl spans several 10 s buckets.
                "blocks": {"park_min_responses": 3, "park_seconds": 5.0, "give_up_after_parks": 3},
            }
        )
    )
    started = await shardcrawl("start", "--spec", str(spec), env=cli_env())
    assert started.returncode == 0, started.stderr
    crawl_id = started.stdout.strip().splitlines()[-1]
    assert (await shardcrawl("wait", crawl_id, env=cli_env())).returncode == 0

    report = read_report(out, crawl_id)
    series = TimeSeries.model_validate(report["timeseries"])
    # Recorded as the crawl ran: every request, page, block and retry is in some bucket.
    assert series.count >= 2, series
    for field, total in (
        ("requests", report["requests"]),
        ("pages", report["pages_fetched"]),
        ("failures", report["failures"]),
        ("blocked", report["blocked"]),
        ("retries", report["retries"]),
    ):
        assert sum(series.column(field)) == total, field
    assert report["blocked"] and report["retries"] and report["failures"]

    shown = await shardcrawl("report", crawl_id, "--html", env=cli_env())
    assert shown.returncode == 0, shown.stderr
    page = out / crawl_id / "report.html"
    assert shown.stdout.strip() == str(page)
    # --open hands the page to the user's browser: here $BROWSER, a script that notes the URL.
    opened = tmp_path / "opened.txt"
    note = tmp_path / "browser.py"
    note.write_text(f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])")
    browser_env = cli_env(BROWSER=f"{sys.executable} {note} %s")
    assert (await shardcrawl("report", crawl_id, "--open", env=browser_env)).returncode == 0
    for _ in range(100):
        if opened.exists():
            break
        await asyncio.sleep(0.1)
    assert opened.read_text() == page.as_uri()
    html = page.read_text(encoding="utf-8")
    # Self-contained: nothing to fetch, whatever the browser.
    assert not re.search(r"""\b(src|href)=|@import|url\(""", html)

    async with Chromium(binary, tmp_path / "chromium") as browser:
        await browser.open(page.as_uri())
        assert browser.errors == []
        assert browser.requests == [page.as_uri()]
        charts = await browser.evaluate(
            """Array.from(document.querySelectorAll("svg.chart")).map(svg => ({
                id: svg.id, buckets: Number(svg.dataset.buckets),
                points: Array.from(svg.querySelectorAll("polyline.series"))
                    .map(line => line.points.numberOfItems)}))"""
        )
        assert [c["id"] for c in charts] == [f"chart-{chart_id}" for chart_id, _, _ in CHARTS]
        for chart, (_, _, names) in zip(charts, CHARTS, strict=True):
            assert chart["buckets"] == series.count
            assert chart["points"] == [series.count] * len(names), chart
        hosts = await browser.evaluate(
            """Array.from(document.querySelectorAll("#hosts tbody tr"))
                .map(row => row.cells[0].textContent)"""
        )
        assert sorted(hosts) == sorted(report["hosts"])
        states = await browser.evaluate(
            """Object.fromEntries(Array.from(document.querySelectorAll("#hosts tbody tr"))
                .map(row => [row.cells[0].textContent, row.cells[8].textContent]))"""
        )
        assert states[IPS["blocker"]].startswith("abandoned")
        # Sorting: a click on "block rate" puts the most blocked host first.
        first = await browser.evaluate(
            """(() => { document.querySelectorAll("#hosts th")[4].click();
                return document.querySelector("#hosts tbody tr").cells[0].textContent; })()"""
        )
        assert first == IPS["blocker"]
        failures = await browser.evaluate(
            """Array.from(document.querySelectorAll("#failure-classes tbody tr"))
                .map(row => row.cells[0].textContent)"""
        )
        assert set(failures) == set(report["failure_classes"])
        await browser.screenshot(tmp_path / "report.png")
        assert browser.errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
