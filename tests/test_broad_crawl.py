"""A broad crawl (many small hosts): batches span many hosts, robots.txt goes in few activities,
and each host still gets exactly its own budget. Politeness is checked from the site's log,
the activity counts from the workflows' real histories."""

from __future__ import annotations

import asyncio
from collections import Counter

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from shardcrawl import urls
from shardcrawl.history_audit import list_runs
from shardcrawl.sites.graph import reachable_pages
from shardcrawl.sites.process import max_overlap
from tests.helpers import read_items, start_crawl

HOSTS = tuple(f"127.0.1.{i}" for i in range(1, 31))
CONCURRENCY = 2


async def activities_run(client: Client, crawl_id: str) -> Counter[str]:
    """Activities scheduled by every run of the crawl and its shards, by name."""
    counts: Counter[str] = Counter()
    scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    for run in await list_runs(client, crawl_id):
        handle = client.get_workflow_handle(run.id, run_id=run.run_id)
        async for event in handle.fetch_history_events():
            if event.event_type == scheduled:
                attributes = event.activity_task_scheduled_event_attributes
                counts[attributes.activity_type.name] += 1
    return counts


async def test_many_small_hosts_share_batches_and_keep_their_budgets(
    client, workers, task_queue, site_factory, tmp_path
):
    site = site_factory(
        ips=HOSTS,
        pages_per_host=6,
        cross_host_ratio=0.5,
        variants=False,
        extras=False,
        delay_ms=30,
    )
    out = tmp_path / "out"
    workers.start(2)
    spec = {
        "seeds": [f"http://{host}/" for host in site.config.hosts],
        "allowed_domains": list(HOSTS),
        "concurrency_per_host": CONCURRENCY,
        "batch_size": 50,
        "shards": 2,
        "output": str(out),
        "allow_private_networks": True,
    }
    handle = await start_crawl(client, spec, task_queue)
    report = await asyncio.wait_for(handle.result(), timeout=240)
    await asyncio.sleep(0.5)  # the site flushes its log every 0.1 s

    expected = reachable_pages(site.config, spec["seeds"], max_depth=100)
    requests = site.requests()
    pages = Counter(
        urls.canonicalize(f"http://{r['host']}{r['path']}")
        for r in requests
        if r["path"] != "/robots.txt"
    )
    assert set(pages) == set(expected)
    assert max(pages.values()) == 1, "a page was fetched twice"
    assert sorted(item["url"] for item in read_items(out, handle.id)) == sorted(expected)
    robots = Counter(r["host"] for r in requests if r["path"] == "/robots.txt")
    assert robots == Counter({host: 1 for host in site.config.hosts})

    concurrency = site.max_concurrency_by_host()
    assert max(concurrency.values()) <= CONCURRENCY, concurrency
    assert max(concurrency.values()) == CONCURRENCY, "no host's budget was used in full"
    # Hosts were fetched side by side, far beyond one host's budget.
    assert max_overlap((r["start"], r["end"]) for r in requests) > 3 * CONCURRENCY

    ran = await activities_run(client, handle.id)
    # One batch per host and wave would be at least 30 first batches; robots.txt one per host.
    assert ran["crawl_batch"] < len(HOSTS), ran
    assert ran["fetch_robots"] <= 2 * spec["shards"], ran
    assert report.status == "completed" and report.pages_fetched == len(expected)
