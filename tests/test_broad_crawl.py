"""A broad crawl (many small hosts): batches span many hosts, robots.txt goes in few activities,
and each host still gets exactly its own budget. Politeness is checked from the site's log,
the activity counts from the workflows' real histories."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from shardcrawl.core import urls
from shardcrawl.models import CrawlSpec, FetchOptions
from shardcrawl.temporal.wire import decode_payload
from shardcrawl.testing.history_audit import audit_crawl
from shardcrawl.testing.sites.graph import reachable_pages
from shardcrawl.testing.sites.process import max_overlap
from tests.helpers import crawl_events, read_items, start_crawl
from tests.moody_site import RETRY_AFTER_SECONDS, THROTTLED_PAGES, MoodySite

HOSTS = tuple(f"127.0.1.{i}" for i in range(1, 31))
CONCURRENCY = 2
MOODY = ("home", "flaky", "throttle", "blocker", "down")


async def activities_run(client: Client, crawl_id: str) -> Counter[str]:
    """Activities scheduled by every run of the crawl and its shards, by name."""
    return sum((run.activities for run in await audit_crawl(client, crawl_id)), Counter())


async def batch_inputs(client: Client, crawl_id: str) -> list[dict]:
    """The BatchRequest of every crawl_batch the crawl's shards scheduled, as JSON."""
    scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    return [
        json.loads(
            decode_payload(event.activity_task_scheduled_event_attributes.input.payloads[0]).data
        )
        async for event in crawl_events(client, crawl_id, scheduled)
        if event.activity_task_scheduled_event_attributes.activity_type.name == "crawl_batch"
    ]


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

    # The fetch options are stored once and named by digest: no batch carries them.
    requests_sent = await batch_inputs(client, handle.id)
    assert {r.get("fetch_digest") for r in requests_sent} == {
        FetchOptions.from_spec(CrawlSpec.model_validate(spec)).digest()
    }
    assert not any("fetch" in r for r in requests_sent)

    runs = await audit_crawl(client, handle.id)
    ran = sum((run.activities for run in runs), Counter())
    # One batch per host and wave would be at least 30 first batches; robots.txt one per host.
    assert ran["crawl_batch"] < len(HOSTS), ran
    assert ran["fetch_robots"] <= 2 * spec["shards"], ran
    # A shard waiting for one moment (its links' deadline) through many landings keeps one
    # timer: a timer per landing would be about one per batch.
    events = sum((run.event_types for run in runs), Counter())
    links = sum(run.signals["links"] for run in runs)
    assert events["TIMER_STARTED"] <= links + spec["shards"], (events, links)
    assert report.status == "completed" and report.pages_fetched == len(expected)


async def test_a_retry_after_holds_its_host_not_the_batch(
    client, workers, task_queue, site_factory, tmp_path
):
    """One shard, every seed at once: a slow host's 20 pages and a throttled host's 10 share
    the first batch. The throttled host's 429 holds it for its Retry-After; the slow host's
    requests go on meanwhile, in the same batch."""
    slow = site_factory(
        ips=("127.0.2.1",), pages_per_host=20, variants=False, extras=False, delay_ms=300
    )
    moody_ips = {name: f"127.0.2.{i}" for i, name in enumerate(MOODY, start=2)}
    moody = MoodySite(moody_ips, tmp_path / "moody.jsonl")
    try:
        workers.start(1)
        slow_pages = [f"http://{slow.config.hosts[0]}/p/{i}" for i in range(1, 20)]
        throttled = [f"{moody.origins['throttle']}/t/{i}" for i in range(THROTTLED_PAGES)]
        spec = {
            "seeds": [slow.seed_url, *slow_pages, *throttled],
            "max_depth": 0,
            "concurrency_per_host": CONCURRENCY,
            "batch_size": 50,
            "shards": 1,
            "obey_robots_txt": False,
            "output": str(tmp_path / "out"),
            "allow_private_networks": True,
        }
        handle = await start_crawl(client, spec, task_queue)
        report = await asyncio.wait_for(handle.result(), timeout=120)
        await asyncio.sleep(0.5)
        throttle_log = sorted(moody.requests("throttle"), key=lambda e: e["start"])
        slow_log = slow.requests()
    finally:
        moody.close()
    assert report.pages_fetched == 20 + THROTTLED_PAGES
    refusal = next(e for e in throttle_log if e["status"] == 429)
    hold_ends = refusal["end"] + RETRY_AFTER_SECONDS
    assert all(
        e["start"] >= hold_ends - 0.05 for e in throttle_log if e["start"] > refusal["end"]
    ), "the throttled host was asked again during its Retry-After"
    during = [r for r in slow_log if refusal["end"] < r["start"] < hold_ends]
    assert len(during) >= 4, "the slow host's requests stopped with the other host's hold"
    # From the history: the slow host's 20 pages all went out in the first batch (a hold of
    # the whole batch would have sent most of them back, to go again in later batches).
    batches = await batch_inputs(client, handle.id)
    slow_host = slow.config.hosts[0]
    with_slow = [b for b in batches if any(slow_host in u["url"] for u in b["urls"])]
    assert len(with_slow) == 1 and len(with_slow[0]["urls"]) == 20 + THROTTLED_PAGES
    origins = sorted(part["origin"] for part in with_slow[0]["slices"])
    assert origins == sorted([f"http://{slow_host}", moody.origins["throttle"]])
