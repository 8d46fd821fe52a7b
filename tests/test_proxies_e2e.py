"""Proxy pools through real forward proxies on loopback (tests/proxy_lab.py), two worker
processes, two shards, a real Temporal server. Every check on routing, identities, capacity and
politeness is made from the proxies' and the sites' own logs."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest

from shardcrawl import urls
from shardcrawl.client import CrawlClient
from shardcrawl.contracts import CrawlProgress
from shardcrawl.display import progress_table, report_table
from tests.helpers import read_items, read_report, render, start_crawl
from tests.proxy_lab import ProxyLab, overlap_max

PROXIES = {"r1": "127.0.0.13", "r2": "127.0.0.14", "t1": "127.0.0.16", "s1": "127.0.0.17",
           "s2": "127.0.0.18"}  # fmt: skip
DOWN = {"r3": "127.0.0.15"}
# name -> (ip, pages, ban_after). Shards are picked by host: with 2 shards, .20 and .24 are
# shard 1's, .21 and .22 shard 0's, so the rotating and the tight pool serve both shards.
SITES = {
    "rot_a": ("127.0.0.20", 24, None),
    "rot_b": ("127.0.0.21", 24, None),
    "tight_c": ("127.0.0.24", 14, None),
    "tight_d": ("127.0.0.22", 14, None),
    "sticky_e": ("127.0.0.23", 14, 5),
    "sticky_f": ("127.0.0.25", 10, None),
    "direct_g": ("127.0.0.26", 4, None),
}
USER, PASSWORD = "crawler", "s3cret-Pa55:word"
CONCURRENCY_PER_HOST = 2
CAPACITY = {"r1": 4, "r2": 4, "r3": 2, "t1": 2, "s1": 2, "s2": 2}


@pytest.fixture
def lab(tmp_path):
    auth = {"s1": (USER, PASSWORD), "s2": (USER, PASSWORD)}
    proxy_lab = ProxyLab(PROXIES, SITES, tmp_path / "lab.jsonl", auth=auth, down=DOWN)
    yield proxy_lab
    proxy_lab.close()


def _spec(lab: ProxyLab, out: str) -> dict:
    def pool(*names: str, credentials: bool = False) -> dict:
        prefix = "${LAB_PROXY_USER}:${LAB_PROXY_PASS}@" if credentials else ""
        return {
            "proxies": [
                {"url": f"http://{prefix}{lab.addresses[n]}", "capacity": CAPACITY[n]}
                for n in names
            ]
        }

    def hosts(*sites: str) -> list[str]:
        return [SITES[s][0] for s in sites]

    return {
        "seeds": [lab.origin(name) + "/" for name in SITES],
        "allowed_domains": hosts(*SITES),
        "allow_private_networks": True,
        "shards": 2,
        "max_depth": 3,
        "batch_size": 4,
        "concurrency_per_host": CONCURRENCY_PER_HOST,
        "output": out,
        "retry": {"max_attempts": 4, "backoff_base_seconds": 0.2},
        # Blocks here are one identity's ban, not the host's: keep the host from parking.
        "blocks": {"park_min_responses": 1000, "park_window": 1000},
        "proxies": {
            "pools": {
                "rotating": pool("r1", "r2", "r3"),
                "tight": pool("t1"),
                "sticky": pool("s1", "s2", credentials=True),
            },
            "routes": [
                {"domains": hosts("rot_a", "rot_b"), "mode": "rotate", "pool": "rotating"},
                {"domains": hosts("tight_c", "tight_d"), "mode": "rotate", "pool": "tight"},
                {"domains": hosts("sticky_e", "sticky_f"), "mode": "sticky", "pool": "sticky"},
                {"domains": ["*"], "mode": "direct"},
            ],
            "cooldown_seconds": 1.0,
        },
    }


async def test_pools_identities_capacity_and_health_from_the_proxies_logs(
    client, workers, task_queue, lab, tmp_path
):
    assert urls.shard_of(lab.origin("rot_a"), 2) != urls.shard_of(lab.origin("rot_b"), 2)
    assert urls.shard_of(lab.origin("tight_c"), 2) != urls.shard_of(lab.origin("tight_d"), 2)
    workers.extra_env.update({"LAB_PROXY_USER": USER, "LAB_PROXY_PASS": PASSWORD})
    workers.start(2)
    out = tmp_path / "out"
    handle = await start_crawl(client, _spec(lab, str(out)), task_queue)
    live = CrawlClient(client, task_queue=task_queue).get(handle.id)
    statuses: list[CrawlProgress] = []

    async def watch() -> None:
        while True:
            statuses.append(await live.status())
            await asyncio.sleep(0.3)

    watcher = asyncio.create_task(watch())
    try:
        report = await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        watcher.cancel()
    await asyncio.sleep(0.3)

    ip_of = {**PROXIES, **DOWN}
    name_of_ip = {ip: name for name, ip in ip_of.items()}
    site_log = lab.entries("site")
    proxy_log = lab.entries("proxy")
    by_site: dict[str, list[dict]] = defaultdict(list)
    for entry in sorted(site_log, key=lambda e: e["start"]):
        by_site[entry["site"]].append(entry)

    # Every page of every site is in the output, fetched once with a 200 in the end.
    items = read_items(out, handle.id)
    pages = Counter(item["url"] for item in items)
    assert all(n == 1 for n in pages.values())
    for name, (_, count, _) in SITES.items():
        mine = [i for i in items if i["url"].startswith(lab.origin(name) + "/")]
        assert len(mine) == count + 1, name
        assert all(i["status"] == 200 for i in mine), name
    assert report.failures == 0

    # Requests went through the assigned pool (robots.txt included), and direct means direct.
    robots = [e for e in lab.entries() if e["kind"] == "site" and e["path"] == "/robots.txt"]
    pools = {"rot": {"r1", "r2"}, "tight": {"t1"}, "sticky": {"s1", "s2"}}
    for entry in site_log + robots:
        client_name = name_of_ip.get(entry["client"], "direct")
        expected = pools.get(entry["site"].split("_")[0], {"direct"})
        assert client_name in expected, entry
    assert all(e["auth_ok"] for e in proxy_log), "a proxy refused the workers' credentials"

    # Rotating hosts spread over the pool's live proxies.
    for site in ("rot_a", "rot_b"):
        spread = Counter(name_of_ip[e["client"]] for e in by_site[site])
        assert set(spread) == {"r1", "r2"}, spread
        assert min(spread.values()) >= len(by_site[site]) // 4, spread

    # Sticky hosts keep one identity until it is banned, then move to another for good.
    for site in ("sticky_e", "sticky_f"):
        clients = [name_of_ip[e["client"]] for e in by_site[site]]
        switches = sum(1 for a, b in zip(clients, clients[1:], strict=False) if a != b)
        if site == "sticky_f":
            assert len(set(clients)) == 1, clients
            continue
        first = clients[0]
        assert switches == 1, clients
        banned = [e for e in by_site[site] if e["status"] == 403]
        assert banned and {name_of_ip[e["client"]] for e in banned} == {first}
        assert all(
            name_of_ip[e["client"]] != first
            for e in by_site[site]
            if e["start"] > banned[-1]["end"]
        )
    sticky_stats = report.proxies[
        f"http://${{LAB_PROXY_USER}}:${{LAB_PROXY_PASS}}@{lab.addresses['s1']}"
    ]
    assert sticky_stats.pool == "sticky"

    # Capacity held across both workers and both shards, as the proxies counted it; the tight
    # proxy was shared by the two shards at once, each within its half.
    for name in PROXIES:
        intervals = [e for e in proxy_log if e["proxy"] == name]
        assert overlap_max(intervals) <= CAPACITY[name], name
        assert lab.max_in_flight(name) <= CAPACITY[name], name
    assert lab.max_in_flight("t1") == CAPACITY["t1"]

    # Per-host politeness held whatever the number of identities.
    for site, entries in by_site.items():
        assert overlap_max(entries) <= CONCURRENCY_PER_HOST, site

    # The refusing proxy rested with doubling cool-downs and the crawl went on without it.
    down = report.proxies[f"http://{lab.addresses['r3']}"]
    assert down.failures >= 1 and down.cooldowns >= 1 and down.responses == 0
    elapsed = report.elapsed_seconds
    # Per shard: its first try, then one after each rest of 1 s, 2 s, 4 s ... (halved at most
    # by jitter); robots.txt fetches are tries too.
    tries_allowed = 2 * (3 + int(elapsed).bit_length())
    assert down.requests <= tries_allowed, (down.requests, elapsed)

    # Status and report show each proxy's use and health.
    live_proxies = [p for s in statuses for p in s.proxies.values() if p.requests]
    assert live_proxies, "status never showed proxy use"
    r1 = report.proxies[f"http://{lab.addresses['r1']}"]
    site_hits = sum(1 for e in site_log if e["client"] == PROXIES["r1"])
    assert r1.responses == site_hits and r1.capacity == CAPACITY["r1"]
    assert r1.mean_latency_ms >= 40  # every answer takes ANSWER_SECONDS (50 ms)
    s_stats = [report.proxies[u] for u in report.proxies if report.proxies[u].pool == "sticky"]
    assert sum(p.bans for p in s_stats) >= 1 and sum(p.blocks for p in s_stats) >= 1
    assert read_report(out, handle.id)["proxies"].keys() == report.proxies.keys()

    # The password never shows: not in history, report, status, worker logs or errors.
    texts = [
        (out / handle.id / "report.json").read_text(),
        render(report_table(report)),
        *(render(progress_table(s)) for s in statuses[-3:]),
        workers.logs(),
    ]
    async for execution in client.list_workflows(f"WorkflowId STARTS_WITH '{handle.id}'"):
        history = await client.get_workflow_handle(
            execution.id, run_id=execution.run_id
        ).fetch_history()
        texts.append(history.to_json())
    assert len(texts) > 6
    assert not [t for t in texts if PASSWORD in t]
