"""Links between shards go straight from shard to shard, and the crawl still never ends early.

One seed on one of 24 hosts, 4 shards, most links across hosts: nearly every page is found
only through another shard's message. From the site's log, every reachable page is fetched
exactly once (an end test fooled by a message on its way would leave pages unfetched). From
the real histories: the parent's reports carry counts, never a URL, and the shards' `links`
messages carry the crossings, columns for plain links.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from temporalio.api.enums.v1 import EventType

from shardcrawl.core import urls
from shardcrawl.temporal.wire import decode_payload
from shardcrawl.testing.sites.graph import reachable_pages
from tests.helpers import crawl_events, start_crawl

HOSTS = tuple(f"127.0.3.{i}" for i in range(1, 25))
SHARDS = 4


async def _signals(client, crawl_id: str) -> dict[str, list[dict]]:
    """Every signal the crawl's workflows received, by signal name, as JSON."""
    received: dict[str, list[dict]] = {}
    signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    async for event in crawl_events(client, crawl_id, signaled):
        attributes = event.workflow_execution_signaled_event_attributes
        payload = json.loads(decode_payload(attributes.input.payloads[0]).data)
        received.setdefault(attributes.signal_name, []).append(payload)
    return received


async def test_links_cross_shards_directly_and_every_page_is_fetched_once(
    client, workers, task_queue, site_factory, tmp_path
):
    site = site_factory(
        ips=HOSTS,
        pages_per_host=6,
        cross_host_ratio=0.8,
        variants=False,
        extras=False,
    )
    workers.start(2)
    spec = {
        "seeds": [site.seed_url],
        "allowed_domains": list(HOSTS),
        "max_depth": 100,
        "shards": SHARDS,
        "batch_size": 20,
        "output": str(tmp_path / "out"),
        "allow_private_networks": True,
        "obey_robots_txt": False,
    }
    handle = await start_crawl(client, spec, task_queue)
    report = await asyncio.wait_for(handle.result(), timeout=240)
    await asyncio.sleep(0.5)  # the site flushes its log every 0.1 s

    expected = reachable_pages(site.config, spec["seeds"], max_depth=100)
    owners = {urls.shard_of(urls.origin(page), SHARDS) for page in expected}
    assert len(owners) == SHARDS, "the site's pages are spread over every shard"
    pages = Counter(
        urls.canonicalize(f"http://{r['host']}{r['path']}")
        for r in site.requests()
        if r["path"] != "/robots.txt"
    )
    assert set(pages) == set(expected)
    assert max(pages.values()) == 1, "a page was fetched twice"
    assert report.status == "completed" and report.pages_fetched == len(expected)

    signals = await _signals(client, handle.id)
    reports = signals["shard_status"]
    assert reports and not any("forwards" in r or "urls" in r for r in reports)
    assert any(r.get("sent") for r in reports) and any(r.get("applied") for r in reports)
    messages = signals["links"]
    crossed = [u for m in messages for u in m.get("urls", [])]
    assert crossed, "plain links go as a column of URLs"
    for message in messages:
        owner = {urls.shard_of(urls.origin(u), SHARDS) for u in message.get("urls", [])}
        assert len(owner) == 1 and message["sender"] not in owner
    enqueued = [u for m in signals["enqueue"] for u in m.get("urls", [])]
    assert [u["url"] for u in enqueued] == [site.seed_url], "the parent sends only the seed"
