"""Crawl discipline against real misbehaving servers on loopback (tests/moody_site.py), two
worker processes, a real Temporal server. Every check is made from the servers' own logs."""

from __future__ import annotations

import asyncio
import urllib.request
from collections import Counter, defaultdict

import pytest

from shardcrawl.core import urls
from shardcrawl.core.ports import free_ports
from shardcrawl.temporal.client import CrawlClient
from tests import moody_site
from tests.helpers import read_items, read_records, read_report, start_crawl
from tests.moody_site import MoodySite

IPS = {
    "home": "127.0.0.8",
    "flaky": "127.0.0.9",
    "throttle": "127.0.0.10",
    "blocker": "127.0.0.11",
    "down": "127.0.0.12",
}
BACKOFF_BASE = 0.5
MAX_ATTEMPTS = 3


@pytest.fixture
def site(tmp_path):
    moody = MoodySite(IPS, tmp_path / "moody.jsonl")
    yield moody
    moody.close()


async def test_retries_backoff_blocks_and_health_from_server_logs(
    client, workers, task_queue, site, tmp_path
):
    out = tmp_path / "out"
    ports = free_ports(2)
    for port in ports:
        workers.extra_env["SHARDCRAWL_METRICS_ADDRESS"] = f"127.0.0.1:{port}"
        workers.start(1)
    spec = {
        "seeds": [site.seed],
        "allowed_domains": list(IPS.values()),
        "max_depth": 5,
        "concurrency_per_host": 2,
        "batch_size": 4,
        "shards": 3,
        "output": str(out),
        "allow_private_networks": True,
        "retry": {"max_attempts": MAX_ATTEMPTS, "backoff_base_seconds": BACKOFF_BASE},
        # A park of 3 s: long enough for a live status on a loaded machine to see it.
        "blocks": {"park_min_responses": 3, "park_seconds": 3.0, "give_up_after_parks": 2},
    }
    handle = await start_crawl(client, spec, task_queue)
    live = CrawlClient(client, task_queue=task_queue).get(handle.id)
    seen_parked: set[str] = set()

    async def watch() -> None:
        """Parks must show in the live status while they last."""
        while True:
            progress = await live.status()
            seen_parked.update(n for n, h in progress.hosts.items() if h.state == "parked")
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch())
    try:
        report = await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        watcher.cancel()
    assert seen_parked == {"127.0.0.11"}, "the parked host never showed in status"
    await asyncio.sleep(0.3)
    log = site.requests()
    by_path: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for entry in log:
        by_path[(entry["host"], entry["path"])].append(entry)
    items = read_items(out, handle.id)
    recorded = Counter(item["url"] for item in items)
    assert [u for u, n in recorded.items() if n > 1] == [], "a URL recorded twice"
    status_of = {item["url"]: item["status"] for item in items}
    hosts = report.hosts

    # 503 twice then 200: fetched in the end, the waits at least the backoff's floor.
    for i in range(moody_site.FLAKY_PAGES):
        tries = sorted(e["start"] for e in by_path[("flaky", f"/flaky/{i}")])
        assert len(tries) == 3
        assert tries[1] - tries[0] >= 0.5 * BACKOFF_BASE
        assert tries[2] - tries[1] >= 0.5 * BACKOFF_BASE * 2
        assert status_of[f"{site.origins['flaky']}/flaky/{i}"] == 200

    # 429 with Retry-After: 3: nothing to that host from either worker for 3 seconds. (Its
    # answers take 0.2 s: a request sent along with the 429's arrives before the 429 ends.)
    throttle = sorted(site.requests("throttle"), key=lambda e: e["start"])
    refusal = next(e for e in throttle if e["status"] == 429)
    after = [e["start"] for e in throttle if e["start"] > refusal["end"]]
    assert after and min(after) >= refusal["end"] + moody_site.RETRY_AFTER_SECONDS - 0.05, [
        (e["path"], e["status"], round(e["start"] - refusal["end"], 3)) for e in throttle
    ]
    for i in range(moody_site.THROTTLED_PAGES):
        assert status_of[f"{site.origins['throttle']}/t/{i}"] == 200
    assert hosts["127.0.0.10"].slowdowns >= 1, "a 429 did not slow the host down"

    # 404 and 410: fetched once, never retried.
    for code in (404, 410):
        assert len(by_path[("home", f"/gone/{code}")]) == 1
        assert status_of[f"{site.origins['home']}/gone/{code}"] == code

    # A host that blocks everything is parked, probed, then given up on; the rest completes.
    blocker = hosts["127.0.0.11"]
    assert blocker.parks == 2 and blocker.state == "abandoned"
    assert blocker.blocked == blocker.requests == len(site.requests("blocker"))
    assert blocker.requests <= moody_site.BLOCKED_PAGES + 1, "requests after the first park"
    assert blocker.failure_classes.get("host_abandoned", 0) >= 1
    assert report.abandoned_hosts == ["127.0.0.11"]
    # Each URL given up with its host still has its one record, written by the shard.
    given_up = [r for r in read_records(out, handle.id) if r.get("error") == "host_abandoned"]
    assert len(given_up) == blocker.failure_classes["host_abandoned"]
    assert all(
        r["status"] is None and r["url"].startswith(site.origins["blocker"]) for r in given_up
    )
    assert len({r["url"] for r in given_up}) == len(given_up)
    for i in range(moody_site.HOME_PAGES):
        assert status_of[f"{site.origins['home']}/h/{i}"] == 200

    # A host that is down (connections refused): every URL tried MAX_ATTEMPTS times, then
    # a failure; the retries kept to the retry budget (one slot of the host's two).
    down = hosts["127.0.0.12"]
    assert down.requests == moody_site.DOWN_PAGES * MAX_ATTEMPTS
    assert down.failures == moody_site.DOWN_PAGES and down.pages == 0
    assert down.failure_classes == {"connection_refused": moody_site.DOWN_PAGES}
    assert down.gave_up == moody_site.DOWN_PAGES
    assert report.status == "completed"

    # The report's health numbers, computed again from the servers' logs alone.
    # The down host's refused connections reach no log: its numbers are the known ones above.
    requests = len(log) + down.requests
    assert report.requests == requests
    blocked = sum(1 for e in log if e["status"] in (403, 429))
    assert report.blocked == blocked
    assert report.block_rate == pytest.approx(blocked / requests, abs=1e-6)
    retries_by_host: Counter[str] = Counter()
    for (host, _), entries in by_path.items():
        retries_by_host[host] += len(entries) - 1
    retries_by_host["down"] = down.requests - moody_site.DOWN_PAGES
    total_retries = sum(retries_by_host.values())
    assert report.retries == total_retries
    top_host = max(retries_by_host.values())
    assert report.retry_concentration == pytest.approx(top_host / total_retries, abs=1e-6)
    links = sum(e["links"] for e in log if e["status"] == 200)
    targets = {urls.canonicalize(site.seed)}
    for href in site.home_links():
        targets.add(urls.canonicalize(href if "://" in href else site.origins["home"] + href))
    duplicates = links - (len(targets) - 1)  # every target is new once, but the seed never
    assert report.links_discovered == links
    assert report.duplicate_rate == pytest.approx(duplicates / links, abs=1e-6)
    on_disk = read_report(out, handle.id)
    assert on_disk["retries"] == report.retries and on_disk["abandoned_hosts"] == ["127.0.0.11"]

    # The same counters on the two workers' Prometheus endpoints, beside the SDK's own.
    scraped = [await asyncio.to_thread(scrape, f"http://127.0.0.1:{p}/metrics") for p in ports]
    crawl = {"crawl_id": handle.id}
    assert sum(metric(text, "shardcrawl_requests", crawl) for text in scraped) == report.requests
    assert sum(metric(text, "shardcrawl_blocked", crawl) for text in scraped) == report.blocked
    assert sum(metric(text, "shardcrawl_retries", crawl) for text in scraped) == report.retries
    # Each worker serves the SDK's metrics too; a worker may have run no activity of its own.
    assert all("\ntemporal_" in text for text in scraped)
    assert any("temporal_activity_execution_latency" in text for text in scraped)


def scrape(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    with opener.open(url, timeout=10) as response:
        return response.read().decode()


def metric(text: str, name: str, labels: dict[str, str]) -> float:
    """Sum of a Prometheus counter's samples that carry ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + "_total{"):
            continue
        sample_labels, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in sample_labels for k, v in labels.items()):
            total += float(value)
    return total
