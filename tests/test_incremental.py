"""Incremental recrawls against a site that changes between runs (tests/changing_site.py): the
counts come from the site's own request log and from the output, not from the crawler's word."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from shardcrawl.cli.report_view import report_table
from shardcrawl.models import CrawlReport, CrawlSpec
from shardcrawl.temporal.client import CrawlClient
from tests.changing_site import COUNTS, LAST_MODIFIED, ChangingSite, pages
from tests.helpers import read_items, read_report, render

IP = "127.0.0.27"
# Version 2 against version 1: etag, lm and /plain are the same; changed and / differ.
UNCHANGED = COUNTS["etag"] + COUNTS["lm"] + 1
CHANGED = COUNTS["changed"] + 1
GONE = COUNTS["removed"]
NEW = COUNTS["new"]


@pytest.fixture
def site(tmp_path):
    changing = ChangingSite(IP, tmp_path)
    yield changing
    changing.close()


def _spec(site: ChangingSite, out: str, **more: object) -> CrawlSpec:
    return CrawlSpec(
        seeds=[site.origin + "/"], allow_private_networks=True, output=out, shards=2, **more
    )


def _check_second_run(site: ChangingSite, report: CrawlReport, items: list[dict]) -> None:
    assert (report.pages_unchanged, report.pages_changed, report.pages_gone, report.pages_new) == (
        UNCHANGED,
        CHANGED,
        GONE,
        NEW,
    )
    log = site.requests(version=2)
    by_path = Counter(e["path"] for e in log)
    everything = {"/", *pages(1), *pages(2)}
    assert set(by_path) == everything and set(by_path.values()) == {1}, by_path
    status = {e["path"]: e["status"] for e in log}
    for i in range(COUNTS["etag"]):
        entry = next(e for e in log if e["path"] == f"/etag/{i}")
        assert entry["if_none_match"] == f'"/etag/{i}"' and entry["status"] == 304
    for i in range(COUNTS["lm"]):
        entry = next(e for e in log if e["path"] == f"/lm/{i}")
        assert entry["if_modified_since"] == LAST_MODIFIED and entry["status"] == 304
    assert sum(1 for s in status.values() if s == 304) == UNCHANGED - 1  # /plain: refetched

    # The output is complete: an unchanged page's record carries over without its body.
    records = {item["url"].removeprefix(site.origin): item for item in items}
    assert set(records) == everything
    marks = Counter(r["recrawl"] for r in records.values())
    assert marks == {"unchanged": UNCHANGED, "changed": CHANGED, "gone": GONE, "new": NEW}
    carried = records["/etag/0"]
    assert (
        carried["status"] == 200
        and carried["items"] == [{"title": "/etag/0"}]
        and "checked_at" in carried
    )
    assert records["/removed/0"]["status"] == 404
    assert records["/changed/0"]["etag"] == '"/changed/0-v2"'
    assert report.pages_fetched == len(everything)


async def test_a_recrawl_asks_conditionally_and_counts_what_changed(
    client, workers, task_queue, site, tmp_path
):
    workers.start(1)
    crawls = CrawlClient(client, task_queue=task_queue)
    out = str(tmp_path / "out")
    first = await crawls.start(_spec(site, out))
    report = await first.wait()
    assert report.pages_fetched == len(pages(1)) + 1 and report.previous_crawl is None
    assert not [e for e in site.requests(version=1) if e["if_none_match"] or e["if_modified_since"]]

    site.serve_version(2)
    second = await crawls.start(_spec(site, out, previous_crawl=first.crawl_id))
    report = await second.wait()
    assert report.previous_crawl == first.crawl_id
    _check_second_run(site, report, read_items(tmp_path / "out", second.crawl_id))
    assert read_report(tmp_path / "out", second.crawl_id)["pages_gone"] == GONE
    shown = render(report_table(report))
    assert f"against {first.crawl_id}" in shown
    assert f"{NEW} new, {CHANGED} changed, {UNCHANGED} unchanged, {GONE} gone" in shown


async def test_an_unknown_previous_crawl_fails_the_crawl_saying_so(
    client, workers, task_queue, site, tmp_path
):
    workers.start(1)
    crawls = CrawlClient(client, task_queue=task_queue)
    handle = await crawls.start(_spec(site, str(tmp_path), previous_crawl="no-such-crawl"))
    with pytest.raises(Exception) as failure:
        await handle.wait()
    assert "previous_crawl 'no-such-crawl' has no pages" in str(failure.value.__cause__.__cause__)


async def test_each_scheduled_run_recrawls_the_last_completed_one(
    client, workers, task_queue, site, tmp_path
):
    workers.start(1)
    crawls = CrawlClient(client, task_queue=task_queue)
    out = tmp_path / "out"
    name = f"incremental-{uuid.uuid4().hex[:6]}"
    await crawls.schedules.create(name, _spec(site, str(out)), cron="0 0 1 1 *")
    runs: list[str] = []
    for version in (1, 2):
        site.serve_version(version)
        await crawls.schedules.trigger(name)
        while len(runs) < version:
            summary = await crawls.schedules.describe(name)
            runs = [r.crawl_id for r in summary.recent_runs if r.status == "completed"]
            await asyncio.sleep(0.3)
    await crawls.schedules.delete(name)
    first, second = (read_report(out, run) for run in runs)
    assert first["previous_crawl"] is None and second["previous_crawl"] == runs[0]
    report = CrawlReport.model_validate(second)
    _check_second_run(site, report, read_items(out, runs[1]))
