"""Fetching from a region: hosts routed to fleet ``eu`` are fetched only by workers started
with ``--fetch-queue eu``, the others by the main queue's workers. Each worker sends from its
own loopback address, so the sites' own log (client IP per request) says who fetched what.
While no ``eu`` worker runs, status says the crawl waits for that fleet, and it does not end."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import pytest
from temporalio.client import WorkflowExecutionStatus

from shardcrawl.cli.display import progress_line, progress_table
from shardcrawl.models import CrawlProgress
from shardcrawl.temporal.client import CrawlClient
from tests.helpers import render, start_crawl
from tests.proxy_lab import ProxyLab

EU_WORKER, HOME_WORKER = "127.0.6.21", "127.0.6.22"
PAGES = 5
SITES = {
    "eu_a": ("127.0.6.1", PAGES, None),
    "eu_b": ("127.0.6.2", PAGES, None),
    "home_c": ("127.0.6.3", PAGES, None),
    "home_d": ("127.0.6.4", PAGES, None),
}
EU_SITES = ("eu_a", "eu_b")


@pytest.fixture
def lab(tmp_path):
    sites = ProxyLab({}, SITES, tmp_path / "lab.jsonl")
    yield sites
    sites.close()


def _clients(lab: ProxyLab) -> dict[str, set[str]]:
    """Each site's client addresses, robots.txt included."""
    seen: dict[str, set[str]] = defaultdict(set)
    for line in lab.log_path.read_text().splitlines() if lab.log_path.exists() else []:
        entry = json.loads(line)
        seen[entry["site"]].add(entry["client"])
    return seen


def _pages(lab: ProxyLab, site: str) -> int:
    return len({e["path"] for e in lab.entries("site") if e["site"] == site})


async def _until(check, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def test_a_fleet_fetches_its_hosts_and_a_fleet_without_workers_is_waited_for(
    client, workers, task_queue, lab, tmp_path
):
    spec = {
        "seeds": [lab.origin(name) + "/" for name in SITES],
        "allowed_domains": [SITES[name][0] for name in SITES],
        "concurrency_per_host": 2,
        "batch_size": 4,
        "shards": 2,
        "output": str(tmp_path / "out"),
        "allow_private_networks": True,
        "proxies": {
            "routes": [
                {"domains": [SITES[n][0] for n in EU_SITES], "mode": "direct", "fetch_queue": "eu"}
            ]
        },
    }
    # The main queue's worker alone, sending from its address ($SHARDCRAWL_BIND_ADDRESS).
    workers.extra_env["SHARDCRAWL_BIND_ADDRESS"] = HOME_WORKER
    workers.start(1)
    handle = await start_crawl(client, spec, task_queue)
    crawl = CrawlClient(client, task_queue=task_queue).get(handle.id)
    progress = CrawlProgress(crawl_id=handle.id, state="starting")

    async def home_done_and_eu_waiting() -> bool:
        nonlocal progress
        progress = await crawl.status()
        eu = progress.fleets.get("eu")
        home_done = all(_pages(lab, s) == PAGES + 1 for s in SITES if s not in EU_SITES)
        return home_done and eu is not None and eu.waiting

    await _until(home_done_and_eu_waiting, timeout=30, what="the home hosts, and eu waiting")
    await asyncio.sleep(3)  # no timeout turns the wait into failures, nor ends the crawl
    progress = await crawl.status()
    eu = progress.fleets["eu"]
    assert eu.waiting and eu.in_flight >= 1 and eu.task_queue == f"{task_queue}-fetch-eu"
    assert progress.state == "running" and progress.totals.failures == 0
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    shown = render(progress_table(progress))
    assert "waiting for fleet eu" in shown and "eu 0 workers" in shown
    assert "waiting for fleet eu" in progress_line(progress)
    assert not any(_clients(lab).get(s) for s in EU_SITES), "an eu host was fetched meanwhile"

    # An eu worker (flags over the environment): the crawl goes on and completes.
    workers.start(1, args=["--fetch-queue", "eu", "--bind-address", EU_WORKER])
    report = await asyncio.wait_for(handle.result(), timeout=90)
    assert report.status == "completed" and report.failures == 0
    assert report.pages_fetched == len(SITES) * (PAGES + 1)
    await asyncio.sleep(0.3)
    clients = _clients(lab)
    assert clients == {
        "eu_a": {EU_WORKER},
        "eu_b": {EU_WORKER},
        "home_c": {HOME_WORKER},
        "home_d": {HOME_WORKER},
    }, clients
