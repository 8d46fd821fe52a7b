"""End to end: a generated site on three loopback hosts, two worker processes, a real Temporal
server. Checked from the output and from the site's own request log."""

from __future__ import annotations

import asyncio
from collections import Counter
from urllib.parse import urlsplit

from shardcrawl.core import urls
from shardcrawl.testing.sites.graph import reachable_pages
from shardcrawl.testing.sites.urls import is_optional_url
from tests.helpers import read_records, read_report, start_crawl

MAX_DEPTH = 8
CONCURRENCY = 2


async def test_crawl_fetches_every_reachable_page_once_politely(
    client, workers, task_queue, site_factory, tmp_path
):
    site = site_factory(pages_per_host=40, delay_ms=25)
    out = tmp_path / "out"
    workers.start(2)
    spec = {
        "seeds": [site.seed_url],
        "allowed_domains": ["127.0.0.2", "127.0.0.3", "localhost"],
        "max_depth": MAX_DEPTH,
        "concurrency_per_host": CONCURRENCY,
        "batch_size": 8,
        "shards": 3,
        "output": str(out),
        "allow_private_networks": True,
    }
    handle = await start_crawl(client, spec, task_queue)
    report = await asyncio.wait_for(handle.result(), timeout=240)
    await asyncio.sleep(0.5)  # the site flushes its log every 0.1 s

    records = read_records(out, handle.id)
    assert len(records) == len({r["url"] for r in records}), "a URL was recorded twice"
    # Every URL has its record; those refused before any request say why.
    refused = [r for r in records if r.get("error") == "robots_disallowed"]
    assert refused and {r["attempts"] for r in refused} == {0}
    assert all("/private/" in r["url"] and r["status"] is None for r in refused)
    items = [r for r in records if r not in refused]
    recorded = [item["url"] for item in items]
    expected = reachable_pages(site.config, [site.seed_url], max_depth=MAX_DEPTH)
    missing = set(expected) - set(recorded)
    assert not missing, f"reachable pages not crawled: {sorted(missing)[:10]}"
    extra = {u for u in recorded if u not in expected and not is_optional_url(u)}
    assert not extra, f"pages that should not have been crawled: {sorted(extra)[:10]}"
    assert any("/trap/" in u for u in recorded) and not any(
        f"/trap/{MAX_DEPTH}" in u for u in recorded
    ), "the depth trap was not cut at max_depth"

    for item in items:
        assert {"url", "status", "depth", "fetched_at"} <= item.keys()
        if item["url"] in expected:
            assert item["depth"] >= expected[item["url"]]
        if item["status"] == 200 and item["content_type"] == "text/html":
            assert item["items"][0]["title"], f"no title recorded for {item['url']}"
    statuses = Counter(item["status"] for item in items)
    assert statuses[404] >= 3 and statuses[200] > 100

    requests = site.requests()
    pages_requested = Counter(
        urls.canonicalize(f"http://{r['host']}{r['path']}")
        for r in requests
        if r["path"] != "/robots.txt"
    )
    twice = [u for u, n in pages_requested.items() if n > 1]
    assert not twice, f"pages fetched more than once: {twice[:10]}"
    assert not [r for r in requests if r["path"].startswith("/private/")], "robots.txt ignored"
    robots_fetches = Counter(r["host"] for r in requests if r["path"] == "/robots.txt")
    assert robots_fetches == Counter({host: 1 for host in site.config.hosts})
    concurrency = site.max_concurrency_by_host()
    assert max(concurrency.values()) <= CONCURRENCY, concurrency
    assert max(concurrency.values()) == CONCURRENCY, "the budget was never used in full"

    assert report.status == "completed"
    assert report.pages_fetched == len(items) == sum(pages_requested.values())
    assert report.robots_disallowed == len(refused) and report.too_deep > 0
    assert report.duplicates_skipped > 0
    assert 0 < report.duplicate_rate < 1
    on_disk = read_report(out, handle.id)
    assert on_disk["pages_fetched"] == len(items)
    assert set(on_disk["hosts"]) == {urlsplit(f"http://{h}").hostname for h in site.config.hosts}


async def test_delay_holds_across_two_workers(client, workers, task_queue, site_factory, tmp_path):
    """With a delay, the host sees at most one request per delay on average (plus the burst
    of its concurrency), whatever the number of workers and batches sharing its budget."""
    delay, concurrency = 0.25, 2
    site = site_factory(ips=("127.0.0.5",), pages_per_host=24, extras=False, variants=False)
    workers.start(2)
    spec = {
        "seeds": [site.seed_url],
        "concurrency_per_host": concurrency,
        "delay_seconds": delay,
        "batch_size": 4,
        "output": str(tmp_path / "out"),
        "allow_private_networks": True,
        "obey_robots_txt": False,
    }
    handle = await start_crawl(client, spec, task_queue)
    report = await asyncio.wait_for(handle.result(), timeout=180)
    await asyncio.sleep(0.5)
    starts = sorted(r["start"] for r in site.requests())
    assert report.pages_fetched == len(starts) >= 24
    window = 2.0
    for i, first in enumerate(starts):
        in_window = sum(1 for t in starts[i:] if t < first + window)
        assert in_window <= window / delay + concurrency, (first, in_window)
    span = starts[-1] - starts[0]
    assert span >= (len(starts) - concurrency) * delay * 0.9
