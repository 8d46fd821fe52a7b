"""Sitemaps from robots.txt, checked from the site's log (tests/sitemap_site.py): under
``discover`` the pages only sitemaps list are crawled exactly once and every broken sitemap
is a class in the report; under ``only`` nothing else is asked for; under ``off`` no sitemap
is; a 50,000-URL sitemap reads at bounded worker memory."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shardcrawl.core.ports import free_port
from tests.helpers import read_items, start_crawl, start_ready

ORPHANS = {f"/orphan/{i}" for i in range(7)}
PAGES = {"/", "/p/0", "/p/1", "/p/2"}
SITEMAP_FILES = {f"/sm/{n}" for n in ("index.xml", "a.xml", "b.xml.gz", "cut.xml", "page.xml")}
SITEMAP_FILES |= {"/sm/gone.xml", "/sm/bomb.xml.gz"}


class _Site:
    def __init__(self, tmp_path: Path, ip: str, *flags: str) -> None:
        self.port = free_port(ip)
        self.log = tmp_path / f"sitemap-site-{ip}.jsonl"
        self.process = start_ready(
            "tests.sitemap_site", [str(self.log), ip, str(self.port), *flags], what="the site"
        )
        self.origin = f"http://{ip}:{self.port}"

    def paths(self) -> Counter[str]:
        return Counter(json.loads(line)["path"] for line in self.log.read_text().splitlines())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def _crawl(client: Any, task_queue: str, out: Path, seed: str, **spec: Any) -> Any:
    spec = {"seeds": [seed], "output": str(out), "allow_private_networks": True, **spec}
    handle = await start_crawl(client, spec, task_queue)
    return handle.id, await asyncio.wait_for(handle.result(), timeout=180)


@pytest.mark.parametrize("mode", ["discover", "only", "off"])
async def test_sitemaps_named_by_robots_txt(client, workers, task_queue, tmp_path, mode):
    ip = {"discover": "127.0.5.1", "only": "127.0.5.2", "off": "127.0.5.3"}[mode]
    site = _Site(tmp_path, ip)
    workers.start(1)
    try:
        crawl_id, report = await _crawl(
            client, task_queue, tmp_path / "out", f"{site.origin}/", sitemaps=mode
        )
        await asyncio.sleep(0.2)
        asked = site.paths()
    finally:
        site.close()
    items = {r["url"].removeprefix(site.origin): r for r in read_items(tmp_path / "out", crawl_id)}
    if mode == "off":
        assert set(asked) == {"/robots.txt", *PAGES}
        assert report.sitemaps_fetched == 0 and not report.sitemap_errors
        return
    fetched = ORPHANS if mode == "only" else ORPHANS | PAGES
    assert set(asked) == {"/robots.txt", *SITEMAP_FILES, *fetched}
    assert set(asked.values()) == {1}, "every page and every sitemap once (the loop too)"
    assert set(items) == fetched
    assert items["/orphan/0"]["sitemap_lastmod"] == "2026-11-30"
    assert report.sitemaps_fetched == 6  # index, a, b, cut, page and bomb answered 200
    assert report.sitemap_urls == len(ORPHANS)
    assert report.sitemap_errors == {
        "http_404": 1,
        "loop": 1,
        "malformed": 1,
        "not_a_sitemap": 1,
        "oversize": 1,
    }
    assert report.status == "completed"


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_a_50000_url_sitemap_at_bounded_memory(
    client, workers, task_queue, tmp_path, record_property
):
    site = _Site(tmp_path, "127.0.5.4", "big")
    (worker,) = workers.start(1)
    try:
        crawl_id, report = await _crawl(
            client, task_queue, tmp_path / "out", f"{site.origin}/", sitemaps="only", max_pages=100
        )
        await asyncio.sleep(0.2)
        asked = site.paths()
        peak = _peak_rss_mb(worker.pid)
    finally:
        site.close()
    record_property("worker_peak_rss_mb", round(peak))
    print(f"\n50,000-URL sitemap (50 MB): worker peak RSS {peak:.0f} MB")
    assert report.sitemap_urls == 50_000 and not report.sitemap_errors
    assert report.pages_fetched == 100
    assert sum(1 for p in asked if p.startswith("/big/")) == 100
    # The body itself is 50 MB; a tree of it would take ten times that.
    assert peak < 700, f"worker peak RSS {peak:.0f} MB"


async def test_an_incremental_crawl_carries_over_pages_their_sitemap_says_are_unchanged(
    client, workers, task_queue, tmp_path
):
    """The sitemap's lastmod (2026-11-30) is older than the first crawl's fetch: the second
    crawl asks the site for none of those pages, and carries their records over."""
    site = _Site(tmp_path, "127.0.5.5")
    out = tmp_path / "out"
    workers.start(1)
    try:
        first, _ = await _crawl(client, task_queue, out, f"{site.origin}/")
        await asyncio.sleep(0.2)
        before = site.paths()
        second, report = await _crawl(
            client, task_queue, out, f"{site.origin}/", previous_crawl=first
        )
        await asyncio.sleep(0.2)
        after = site.paths()
    finally:
        site.close()
    asked_again = after - before
    assert not set(asked_again) & ORPHANS, "a page whose sitemap says unchanged was asked again"
    assert set(PAGES) <= set(asked_again), "the other pages are asked again, conditionally"
    assert report.pages_carried == len(ORPHANS)
    assert report.pages_unchanged + report.pages_changed >= len(PAGES)
    carried = [r for r in read_items(out, second) if r.get("carried_by") == "sitemap_lastmod"]
    assert {r["url"].removeprefix(site.origin) for r in carried} == ORPHANS
    assert all(r["recrawl"] == "unchanged" and r["checked_at"] for r in carried)
