"""URL rules, query-parameter stripping, per-host quotas and crawl order, checked from the
site's own request log (tests/rules_site.py); and a callback that raises."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from shardcrawl.cli.report_view import report_table
from shardcrawl.cli.tables import host_table
from shardcrawl.core import urls
from shardcrawl.core.ports import free_port
from tests.helpers import read_items, start_crawl, start_ready


class _Site:
    def __init__(self, tmp_path: Path, ips: tuple[str, ...]) -> None:
        self.port = free_port(ips[0])
        self.log = tmp_path / "rules-site.jsonl"
        self.process = start_ready(
            "tests.rules_site", [str(self.log), str(self.port), *ips], what="the rules site"
        )
        self.origins = [f"http://{ip}:{self.port}" for ip in ips]

    def requests(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["path"] != "/robots.txt"]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def _crawl(client: Any, task_queue: str, tmp_path: Path, **spec: Any) -> Any:
    spec = {
        "output": str(tmp_path / "out"),
        "allow_private_networks": True,
        "obey_robots_txt": False,
        **spec,
    }
    handle = await start_crawl(client, spec, task_queue)
    return await asyncio.wait_for(handle.result(), timeout=180)


async def test_include_exclude_and_stripped_session_ids(client, workers, task_queue, tmp_path):
    site = _Site(tmp_path, ("127.0.4.1",))
    workers.start(1)
    try:
        report = await _crawl(
            client,
            task_queue,
            tmp_path,
            seeds=[f"{site.origins[0]}/"],
            include=[r"/blog/", r"/s/"],
            exclude=[r"\?print=", r"/blog/drafts/"],
            strip_query_params=["SID"],
            max_depth=4,
        )
        await asyncio.sleep(0.2)
        asked = Counter(e["path"] for e in site.requests())
    finally:
        site.close()
    expected = {"/", *(f"/blog/{n}" for n in range(4)), *(f"/s/{n}" for n in range(5))}
    assert set(asked) == expected, "only included pages, none excluded, no session ids"
    assert set(asked.values()) == {1}
    assert report.filtered_by_rule["include"] == 4  # /about, /q/0, /t and /p
    assert report.filtered_by_rule["exclude[0]"] == 4 and report.filtered_by_rule["exclude[1]"] == 4


async def test_a_host_quota_holds_exactly_across_shards_and_workers(
    client, workers, task_queue, tmp_path
):
    ips = tuple(f"127.0.4.{i}" for i in range(10, 18))
    site = _Site(tmp_path, ips)
    workers.start(2)
    try:
        report = await _crawl(
            client,
            task_queue,
            tmp_path,
            seeds=[f"{origin}/q/0" for origin in site.origins],
            max_pages_per_host=7,
            max_depth=40,
            shards=4,
            batch_size=3,
        )
        await asyncio.sleep(0.2)
        per_host = Counter(e["host"] for e in site.requests())
    finally:
        site.close()
    hosts = [urls.hostname(origin) for origin in site.origins]
    assert len({urls.shard_of(urls.origin(o), 4) for o in site.origins}) > 1
    assert per_host == Counter({f"{ip}:{site.port}": 7 for ip in ips})
    assert report.pages_fetched == 7 * len(ips)
    assert report.quota_hosts == sorted(hosts)
    assert all(report.hosts[h].at_quota for h in hosts)
    rendered = Console(width=120, record=True)
    rendered.print(host_table(report.hosts, title="hosts"))
    assert rendered.export_text().count("at quota") == len(hosts), "the host table says so"
    assert report.over_quota > 0
    assert report.status == "completed"


def _paths_in_order(site: _Site) -> list[str]:
    return [e["path"] for e in sorted(site.requests(), key=lambda e: e["at"])]


async def test_depth_first_order_from_the_request_log(client, workers, task_queue, tmp_path):
    site = _Site(tmp_path, ("127.0.4.30",))
    workers.start(1)
    try:
        await _crawl(
            client,
            task_queue,
            tmp_path,
            seeds=[f"{site.origins[0]}/t"],
            order="depth_first",
            concurrency_per_host=1,
            batch_size=1,
            shards=1,
        )
        await asyncio.sleep(0.2)
        order = _paths_in_order(site)
    finally:
        site.close()
    expected = ["/t"]
    for child in (2, 1, 0):
        expected += [f"/t/{child}", *(f"/t/{child}/{k}" for k in (2, 1, 0))]
    assert order == expected


async def test_priority_order_from_the_request_log(client, workers, task_queue, tmp_path):
    site = _Site(tmp_path, ("127.0.4.31",))
    workers.extra_env["SHARDCRAWL_SPIDER_MODULES"] = "shardcrawl.spiders,tests.order_spiders"
    workers.start(1)
    try:
        await _crawl(
            client,
            task_queue,
            tmp_path,
            seeds=[f"{site.origins[0]}/p"],
            spider="priority_pages",
            order="priority",
            concurrency_per_host=1,
            batch_size=1,
            shards=1,
        )
        await asyncio.sleep(0.2)
        order = _paths_in_order(site)
    finally:
        site.close()
    assert order == ["/p", *(f"/p/{n}" for n in range(5, -1, -1))]


async def test_a_callback_that_raises_is_on_its_record_and_counted(
    client, workers, task_queue, tmp_path
):
    site = _Site(tmp_path, ("127.0.4.32",))
    workers.extra_env["SHARDCRAWL_SPIDER_MODULES"] = "shardcrawl.spiders,tests.order_spiders"
    workers.start(1)
    try:
        report = await _crawl(
            client, task_queue, tmp_path, seeds=[f"{site.origins[0]}/p"], spider="raising_pages"
        )
    finally:
        site.close()
    records = {
        r["url"].removeprefix(site.origins[0]): r
        for r in read_items(tmp_path / "out", report.crawl_id)
    }
    assert records["/p/3"]["spider_error"] == "KeyError: 'no such thing'"
    assert records["/p/3"]["items"] == [{"title": "/p/3"}], "what it yielded before is kept"
    assert all("spider_error" not in r for path, r in records.items() if path != "/p/3")
    assert report.spider_errors == {"KeyError": 1}
    rendered = Console(width=100, record=True)
    rendered.print(report_table(report))
    assert "KeyError 1" in rendered.export_text()
