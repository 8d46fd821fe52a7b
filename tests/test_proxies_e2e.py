"""Proxy pools through real forward proxies on loopback (tests/proxy_lab.py), each dialling from
its own 127.x address; two worker processes, four shards, one proxy broker, a real Temporal
server, in one crawl. Every check on routing, rotation, identities, capacity, health, HTTPS and
direct routes is made from the proxies' and the sites' own logs."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict

import pytest

from shardcrawl.cli.display import progress_table
from shardcrawl.cli.report_view import report_table
from shardcrawl.core import urls
from shardcrawl.models import CrawlProgress
from shardcrawl.models.proxy_messages import broker_workflow_id
from shardcrawl.temporal.client import CrawlClient
from tests.helpers import read_items, read_report, render, start_crawl
from tests.proxy_lab import ProxyLab, overlap_max

PROXIES = {"r1": "127.0.0.13", "r2": "127.0.0.14", "t1": "127.0.0.16", "s1": "127.0.0.17",
           "s2": "127.0.0.18", "bad": "127.0.0.19", "noauth": "127.0.0.27", "tls": "127.0.0.28",
           "env": "127.0.0.29", "r3": "127.0.0.15"}  # fmt: skip
# r3 takes every connection and drops it (dead); bad answers its own 502 to everything; noauth
# wants credentials the spec does not give (407); tls is an https:// proxy; env is only in the
# workers' http_proxy/https_proxy, which direct hosts must ignore.
FLAGS = {"r3": "dead", "bad": "broken", "tls": "tls", "secure_h": "tls"}
# name -> (ip, pages, ban_after).
SITES = {
    "rot_a": ("127.0.0.20", 110, None),
    "rot_b": ("127.0.0.21", 24, None),
    "tight_c": ("127.0.0.24", 14, None),
    "tight_d": ("127.0.0.22", 14, None),
    "sticky_e": ("127.0.0.23", 14, 5),
    "sticky_f": ("127.0.0.25", 10, None),
    "direct_g": ("127.0.0.26", 4, None),
    "secure_h": ("127.0.0.30", 6, None),
    "via_tls_i": ("127.0.0.31", 6, None),
}
USER, PASSWORD = "crawler", "s3cret-Pa55:word"
CONCURRENCY_PER_HOST = 2
CAPACITY = {"r1": 4, "r2": 4, "r3": 2, "t1": 2, "s1": 2, "s2": 2, "bad": 2, "noauth": 2, "tls": 2}
COOLDOWN_SECONDS = 1.0


@pytest.fixture
def lab(tmp_path):
    auth = {"s1": (USER, PASSWORD), "s2": (USER, PASSWORD), "noauth": (USER, PASSWORD)}
    proxy_lab = ProxyLab(PROXIES, SITES, tmp_path / "lab.jsonl", auth=auth, flags=FLAGS)
    yield proxy_lab
    proxy_lab.close()


def _spec(lab: ProxyLab, out: str) -> dict:
    def pool(*names: str, credentials: bool = False) -> dict:
        prefix = "${LAB_PROXY_USER}:${LAB_PROXY_PASS}@" if credentials else ""
        return {
            "proxies": [
                {"url": f"{lab.schemes[n]}://{prefix}{lab.addresses[n]}", "capacity": CAPACITY[n]}
                for n in names
            ]
        }

    def hosts(*sites: str) -> list[str]:
        return [SITES[s][0] for s in sites]

    return {
        "seeds": [lab.origin(name) + "/" for name in SITES],
        "allowed_domains": hosts(*SITES),
        "allow_private_networks": True,
        "shards": 4,
        "max_depth": 3,
        "batch_size": 4,
        "concurrency_per_host": CONCURRENCY_PER_HOST,
        "output": out,
        # Two of the tight pool's three proxies fail every request: a URL may meet both.
        "retry": {"max_attempts": 6, "backoff_base_seconds": 0.2},
        # Blocks here are one identity's ban, not the host's: keep the host from parking.
        "blocks": {"park_min_responses": 1000, "park_window": 1000},
        "proxies": {
            "pools": {
                "rotating": pool("r1", "r2", "r3"),
                # One proxy that works, with room for two requests, and two that fail theirs.
                "tight": pool("t1", "bad", "noauth"),
                "sticky": pool("s1", "s2", credentials=True),
                "tls": pool("tls"),
            },
            "routes": [
                {"domains": hosts("rot_a", "rot_b"), "pool": "rotating"},
                # (Not through the dropping r3: Scrapy's CONNECT waits out its timeout when a
                # proxy drops the connection unanswered.)
                {"domains": hosts("tight_c", "tight_d", "secure_h"), "pool": "tight"},
                {"domains": hosts("sticky_e", "sticky_f"), "mode": "sticky", "pool": "sticky"},
                {"domains": hosts("via_tls_i"), "pool": "tls"},
                {"domains": ["*"], "mode": "direct"},
            ],
            "cooldown_seconds": COOLDOWN_SECONDS,
        },
    }


async def test_pools_identities_capacity_and_health_from_the_proxies_logs(
    client, workers, task_queue, lab, tmp_path
):
    assert urls.shard_of(lab.origin("rot_a"), 4) != urls.shard_of(lab.origin("rot_b"), 4)
    assert urls.shard_of(lab.origin("tight_c"), 4) != urls.shard_of(lab.origin("tight_d"), 4)
    workers.extra_env.update({"LAB_PROXY_USER": USER, "LAB_PROXY_PASS": PASSWORD})
    # Direct means direct: the workers' environment names a proxy that must carry nothing.
    env_proxy = lab.proxy_url("env")
    workers.extra_env.update(
        {"http_proxy": env_proxy, "https_proxy": env_proxy, "HTTP_PROXY": env_proxy}
    )
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

    name_of_ip = {ip: name for name, ip in PROXIES.items()}
    site_log = lab.entries("site")
    proxy_log = lab.entries("proxy")
    by_site: dict[str, list[dict]] = defaultdict(list)
    for entry in sorted(site_log, key=lambda e: e["start"]):
        by_site[entry["site"]].append(entry)

    # Every page of every site is in the output, fetched once with a 200 in the end
    # (https through a CONNECT tunnel and http through an https:// proxy included).
    items = read_items(out, handle.id)
    pages = Counter(item["url"] for item in items)
    assert all(n == 1 for n in pages.values())
    for name, (_, count, _) in SITES.items():
        mine = [i for i in items if i["url"].startswith(lab.origin(name) + "/")]
        assert len(mine) == count + 1, name
        assert all(i["status"] == 200 for i in mine), name
    assert report.failures == 0
    assert lab.origin("secure_h").startswith("https://")
    assert {e["method"] for e in proxy_log if e["target"].startswith(SITES["secure_h"][0])} == {
        "CONNECT"
    }

    # Requests went through the assigned pool (robots.txt included), and direct means direct.
    logged = [json.loads(line) for line in lab.log_path.read_text().splitlines()]
    robots = [e for e in logged if e["kind"] == "site" and e["path"] == "/robots.txt"]
    assert robots, "robots.txt went through the routes too"
    pools = {"rot": {"r1", "r2"}, "tight": {"t1"}, "sticky": {"s1", "s2"}, "secure": {"t1"}}
    pools["via"] = {"tls"}
    for entry in site_log + robots:
        client_name = name_of_ip.get(entry["client"], "direct")
        expected = pools.get(entry["site"].split("_")[0], {"direct"})
        assert client_name in expected, entry
    assert not [e for e in proxy_log if e["proxy"] == "env"], "a direct host used the env proxy"
    refused = {e["proxy"] for e in proxy_log if not e["auth_ok"]}
    assert refused == {"noauth"}, "only the proxy without credentials in the spec refused"

    # A rotating host spreads over every healthy proxy of its pool, whatever shard owns it:
    # over any 100 consecutive requests, each within 20 of an even 50.
    rotation = [name_of_ip[e["client"]] for e in by_site["rot_a"]]
    assert len(rotation) >= 100
    for start in range(len(rotation) - 99):
        window = Counter(rotation[start : start + 100])
        assert set(window) <= {"r1", "r2"} and abs(window["r1"] - 50) <= 20, window
    assert {name_of_ip[e["client"]] for e in by_site["rot_b"]} == {"r1", "r2"}

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

    # Capacity held across both workers and all four shards, as the proxies counted it; the
    # tight proxy (2 slots, fewer than the shards) served two shards' hosts at once.
    for name in CAPACITY:
        intervals = [e for e in proxy_log if e["proxy"] == name]
        assert overlap_max(intervals) <= CAPACITY[name], name
    assert lab.max_in_flight("t1") == CAPACITY["t1"]

    # Per-host politeness held whatever the number of identities.
    for site, entries in by_site.items():
        assert overlap_max(entries) <= CONCURRENCY_PER_HOST, site

    # Health is learned fleet-wide: the dead proxy is tried by one fetch per cool-down in the
    # whole fleet (its first try, then one after each rest of 1 s, 2 s, 4 s ..., halved at
    # most by jitter), each try one burst of connections (Twisted's client dials again once
    # or twice when a connection drops before any answer).
    dead = sorted(e["start"] for e in lab.entries("dead"))
    assert dead, "the dead proxy was never tried"
    bursts = [[dead[0]]]
    for at in dead[1:]:
        if at - bursts[-1][-1] < COOLDOWN_SECONDS / 2:
            bursts[-1].append(at)
        else:
            bursts.append([at])
    elapsed = report.elapsed_seconds
    assert len(bursts) <= 2 + int(elapsed / (COOLDOWN_SECONDS / 2)).bit_length(), bursts
    assert all(b[-1] - b[0] < 0.2 for b in bursts), bursts
    r3 = report.proxies[f"http://{lab.addresses['r3']}"]
    assert 1 <= r3.failures <= len(dead) and r3.cooldowns == len(bursts) and r3.responses == 0

    # A proxy's own 502 and its 407 count against the proxy, never against the target host.
    for name in ("bad", "noauth"):
        failing = report.proxies[f"http://{lab.addresses[name]}"]
        assert failing.failures >= 1 and failing.cooldowns >= 1 and failing.responses == 0, name
    for site in ("tight_c", "tight_d"):
        host = report.hosts[SITES[site][0]]
        assert (host.slowdowns, host.parks, host.state) == (0, 0, "ok"), site

    # Status and report show each proxy's use and health, and each host's requests per proxy.
    live_proxies = [p for s in statuses for p in s.proxies.values() if p.requests]
    assert live_proxies, "status never showed proxy use"
    r1 = report.proxies[f"http://{lab.addresses['r1']}"]
    site_hits = sum(1 for e in site_log + robots if e["client"] == PROXIES["r1"])
    assert r1.responses == site_hits and r1.capacity == CAPACITY["r1"]
    assert r1.mean_latency_ms >= 40  # every answer takes ANSWER_SECONDS (50 ms)
    s_stats = [report.proxies[u] for u in report.proxies if report.proxies[u].pool == "sticky"]
    assert sum(p.bans for p in s_stats) >= 1 and sum(p.blocks for p in s_stats) >= 1
    written = read_report(out, handle.id)
    assert written["proxies"].keys() == report.proxies.keys()
    rot_a = written["hosts"][SITES["rot_a"][0]]["proxies"]
    assert {lab.addresses[n]: rot_a[f"http://{lab.addresses[n]}"] for n in ("r1", "r2")} == {
        lab.addresses[n]: rotation.count(n) for n in ("r1", "r2")
    }
    html = (out / handle.id / "report.html").read_text()
    assert f"http://{lab.addresses['r1']} " in html

    # The password never shows: not in history, report, status, worker logs or errors.
    texts = [
        (out / handle.id / "report.json").read_text(),
        render(report_table(report)),
        *(render(progress_table(s)) for s in statuses[-3:]),
        workers.logs(),
    ]
    broker_events = 0
    async for execution in client.list_workflows(f"WorkflowId STARTS_WITH '{handle.id}'"):
        history = await client.get_workflow_handle(
            execution.id, run_id=execution.run_id
        ).fetch_history()
        texts.append(history.to_json())
        if execution.id == broker_workflow_id(handle.id):
            broker_events += len(history.events)
    assert len(texts) > 6
    assert not [t for t in texts if PASSWORD in t]
    # What the broker costs: its history events per batch (printed for docs/architecture.md).
    batches = sum(s.batches for s in statuses[-1].shards) if statuses else 0
    print(f"proxy broker: {broker_events} events for {batches} batches")
    assert broker_events > 0
