"""A broken URL costs that URL its attempts and its backoff, never its host's pace.

Two chains of 200 pages on two hosts, each page found only once the one before it is fetched;
one host also has 10 permanently broken URLs hung off the chain (each drops the connection
without an answer). Both crawls run at once, so they share the machine's noise. From the
servers' logs: the broken host's crawl takes at most 1.5x the clean one's, every page is asked
once, and every broken URL exactly its attempts; and every URL asked has one record.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shardcrawl.core.ports import free_port
from tests.helpers import read_records, start_crawl, start_ready

PAGES = 200
BROKEN_EVERY = 20  # 10 broken URLs
MAX_ATTEMPTS = 3
crawl_ids: dict[str, str] = {}


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


async def _crawl(
    client: Any, fleet_factory: Any, tmp_path: Path, ip: str, broken_every: int
) -> Path:
    port = free_port(ip)
    log = tmp_path / f"chain-{ip}.jsonl"
    site = start_ready(
        "tests.chain_site",
        [str(log), ip, str(port), str(PAGES), str(broken_every)],
        what="the chain site",
    )
    fleet = fleet_factory(1)
    try:
        spec = {
            "seeds": [f"http://{ip}:{port}/"],
            "output": str(tmp_path / f"out-{ip}"),
            "allow_private_networks": True,
            "max_depth": PAGES + 1,
            "retry": {"max_attempts": MAX_ATTEMPTS},
        }
        handle = await start_crawl(client, spec, fleet.task_queue)
        crawl_ids[ip] = handle.id
        await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        site.terminate()
        site.wait(timeout=10)
    return log


def _span(entries: list[dict[str, Any]]) -> float:
    pages = [e["at"] for e in entries if e["path"] != "/robots.txt"]
    return max(pages) - min(pages)


async def test_broken_urls_do_not_slow_their_host(client, fleet_factory, tmp_path) -> None:
    clean_log, broken_log = await asyncio.gather(
        _crawl(client, fleet_factory, tmp_path, "127.0.0.21", 0),
        _crawl(client, fleet_factory, tmp_path, "127.0.0.22", BROKEN_EVERY),
    )
    clean, broken = _log(clean_log), _log(broken_log)
    for entries in (clean, broken):
        chain = Counter(e["path"] for e in entries if e["path"] == "/" or "/c/" in e["path"])
        assert len(chain) == PAGES and set(chain.values()) == {1}, "every page once"
    asked = Counter(e["path"] for e in broken if e["path"].startswith("/broken/"))
    assert len(asked) == PAGES // BROKEN_EVERY
    assert set(asked.values()) == {MAX_ATTEMPTS}, asked
    # Every URL the site was asked for has exactly one record; a broken one says how it
    # ended after its attempts (here every one drops the connection: no status).
    records = read_records(tmp_path / "out-127.0.0.22", crawl_ids["127.0.0.22"])
    by_url = Counter(urlsplit(r["url"]).path for r in records)
    assert set(by_url) == {e["path"] for e in broken if e["path"] != "/robots.txt"}
    assert set(by_url.values()) == {1}
    ended = [r for r in records if "/broken/" in r["url"]]
    assert len(ended) == PAGES // BROKEN_EVERY
    assert all(r["attempts"] == MAX_ATTEMPTS and r["status"] is None for r in ended), ended
    assert {r["error"] for r in ended} == {"download_failed"}
    clean_seconds, broken_seconds = _span(clean), _span(broken)
    assert broken_seconds <= 1.5 * clean_seconds, (broken_seconds, clean_seconds)
