"""Continue-as-new with claim-checked state: a crawl whose workflows continue as new every
~100 events still fetches every reachable page exactly once, loses no signal or credit on the
way, keeps every payload small, and leaves no state behind in its store."""

from __future__ import annotations

import asyncio
from collections import Counter

from temporalio.client import WorkflowExecutionStatus

from shardcrawl.core import urls
from shardcrawl.models import CrawlProgress, CrawlSpec, shard_workflow_id
from shardcrawl.models.timeseries import TimeSeries
from shardcrawl.temporal.client import CrawlClient
from shardcrawl.testing.history_audit import audit_crawl
from shardcrawl.testing.sites.graph import reachable_pages
from tests.helpers import read_items, read_report, shardcrawl

EVENTS_PER_RUN = 100
PAYLOAD_CEILING = 256 * 1024


async def test_crawl_continues_as_new_without_losing_or_repeating_work(
    client, workers, task_queue, site_factory, tmp_path, cli_env
):
    site = site_factory(pages_per_host=70, extras=False)
    out = tmp_path / "out"
    workers.start(2)
    expected = reachable_pages(site.config, [site.seed_url], max_depth=1000)
    spec = {
        "seeds": [site.seed_url],
        "allowed_domains": ["127.0.0.2", "127.0.0.3", "localhost"],
        "max_depth": 1000,
        # A tight pool goes out in many small grants: enough messages for the crawl
        # workflow to continue as new (each grant is at most a quarter of what is left).
        "max_pages": len(expected) + 20,
        "concurrency_per_host": 2,
        "batch_size": 3,
        "shards": 2,
        "output": str(out),
        "allow_private_networks": True,
        "history_events_per_run": EVENTS_PER_RUN,
    }
    crawls = CrawlClient(client, task_queue=task_queue)
    handle = await crawls.start(CrawlSpec.model_validate(spec))
    # Pause and resume once mid-crawl: the flag must survive whatever run is current.
    while (await handle.status()).totals.pages < 40:
        await asyncio.sleep(0.2)
    await handle.pause()
    await asyncio.sleep(1.5)
    table = await shardcrawl("status", handle.crawl_id, "--verbose", env=cli_env())
    assert table.returncode == 0, table.stderr
    for row in ("history, crawl", "largest payload", "continued as new"):
        assert row in table.stdout, table.stdout
    await handle.resume()
    report = await asyncio.wait_for(handle.wait(), timeout=300)
    await asyncio.sleep(0.5)  # the site flushes its log every 0.1 s
    recorded = Counter(item["url"] for item in read_items(out, handle.crawl_id))
    assert [u for u, n in recorded.items() if n > 1] == []
    assert set(recorded) == set(expected)
    fetched = Counter(
        urls.canonicalize(f"http://{r['host']}{r['path']}")
        for r in site.requests()
        if r["path"] != "/robots.txt"
    )
    assert [u for u, n in fetched.items() if n > 1] == [], "a page was fetched twice"
    assert report.status == "completed"
    assert report.pages_fetched == len(expected)
    on_disk = read_report(out, handle.crawl_id)
    assert sum(h["pages"] for h in on_disk["hosts"].values()) == len(expected)
    # The shards' time series travelled through every checkpoint: nothing lost or doubled.
    series = TimeSeries.model_validate(on_disk["timeseries"])
    assert sum(series.column("pages")) == len(expected)
    assert sum(series.column("requests")) == on_disk["requests"]
    assert not (out / handle.crawl_id / "state").exists(), "claim-check state left behind"

    runs = await audit_crawl(client, handle.crawl_id)
    by_workflow = Counter(r.workflow_id for r in runs)
    assert by_workflow[handle.crawl_id] >= 2, "the crawl workflow never continued as new"
    for shard in (shard_workflow_id(handle.crawl_id, 0), shard_workflow_id(handle.crawl_id, 1)):
        assert by_workflow[shard] >= 2, f"{shard} never continued as new"
    continued = [r for r in runs if r.status == WorkflowExecutionStatus.CONTINUED_AS_NEW]
    assert len(continued) == len(runs) - 3
    assert max(r.largest_payload_bytes for r in runs) < PAYLOAD_CEILING
    # A run continues once it passes the limit, after its in-flight batches land.
    assert max(r.events for r in runs) < 4 * EVENTS_PER_RUN

    shown = await shardcrawl("status", handle.crawl_id, "--json", env=cli_env())
    progress = CrawlProgress.model_validate_json(shown.stdout)
    assert progress.continued_as_new == by_workflow[handle.crawl_id] - 1
    crawl_runs = [r for r in runs if r.workflow_id == handle.crawl_id]
    assert progress.history_length == crawl_runs[-1].events
    # The workflows measure their payloads as JSON, before compression (shardcrawl.temporal.wire):
    # never less than what history holds, the audit's protobuf with metadata.
    audited = max(r.largest_payload_bytes for r in runs)
    shown_largest = max(progress.largest_payload_bytes, progress.totals.largest_payload_bytes)
    assert audited <= shown_largest
    assert progress.totals.continued_as_new == sum(by_workflow.values()) - by_workflow[
        handle.crawl_id
    ] - (len(by_workflow) - 1)
