"""A crawl whose store goes away mid-crawl waits for it and loses nothing.

Outages, each in the middle of its own crawl, all at once so that the suite pays for the
longest only: S3 refusing connections for 90 s (a TCP forwarder in front of moto, stopped
and started), S3 answering 503 SlowDown for 60 s, S3 frozen (SIGSTOP) for 60 s, and a local
disk (a small tmpfs) filled for 60 s, then freed. Each crawl must complete with every
reachable page in its output exactly once; while the store is down, `shardcrawl status`
says so and since when; on the full disk, no partial file is ever visible under its final
name. A store that refuses for good (its items folder replaced by a file) fails the crawl
at once, naming the store and the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from temporalio.client import WorkflowFailureError

from shardcrawl.testing.sites.graph import reachable_pages
from shardcrawl.testing.sites.process import SiteProcess
from tests.helpers import read_items, shardcrawl, start_crawl
from tests.plugins.s3 import make_bucket, start_moto, stop_moto
from tests.plugins.temporal import Workers
from tests.tcp_forwarder import TcpForwarder

REFUSED_SECONDS = 90
OUTAGE_SECONDS = 60
MAX_DEPTH = 3
CRAWL_TIMEOUT = 420


def _spec(site: SiteProcess, output: str) -> dict[str, Any]:
    # One request at a time per host, half a second apart: about 25 s of crawling, so the
    # outage lands in the middle of it.
    return {
        "seeds": [site.seed_url],
        "allowed_domains": ["127.0.0.2", "127.0.0.3"],
        "max_depth": MAX_DEPTH,
        "output": output,
        "allow_private_networks": True,
        "concurrency_per_host": 1,
        "delay_seconds": 0.5,
        "batch_size": 5,
    }


def _expected(site: SiteProcess) -> set[str]:
    return set(reachable_pages(site.config, [site.seed_url], max_depth=MAX_DEPTH))


def _assert_exactly_once(urls: list[str], site: SiteProcess) -> None:
    assert len(urls) == len(set(urls)), "a page is in the output twice"
    missing = _expected(site) - set(urls)
    assert not missing, f"{len(missing)} reachable pages missing, e.g. {sorted(missing)[:3]}"


def _s3_urls(endpoint: str, bucket: str, crawl_id: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    urls = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"crawls/{crawl_id}/items/"
    ):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            records = [json.loads(line) for line in body.splitlines() if line]
            urls += [r["url"] for r in records if r["status"] is not None]
    return urls


async def _until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


async def _mid_crawl(site: SiteProcess) -> None:
    """Once the crawl has fetched a few pages, with most still to go."""
    await _until(lambda: len(site.requests()) >= 6, timeout=60, what="the crawl to start")


async def _status_says_store_down(crawl_id: str, env: dict[str, str], *, within: float) -> str:
    """`shardcrawl status` while the store is down; it must say so within ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        shown = await shardcrawl("status", crawl_id, env=env, timeout=60)
        if "waiting on the store" in shown.stdout:
            return shown.stdout
        assert time.monotonic() < deadline, f"status never said the store is down:\n{shown}"
        await asyncio.sleep(2)


class Outages:
    """What the scenarios share: the client, a fleet of workers per scenario, sites."""

    def __init__(
        self, client: Any, tmp_path: Path, site_factory: Any, fleet_factory: Any, cli_env: Any
    ) -> None:
        self.client = client
        self.tmp_path = tmp_path
        self.site_factory = site_factory
        self.fleet_factory = fleet_factory
        self._cli_env = cli_env

    def workers(self, count: int, **env: str) -> Workers:
        fleet: Workers = self.fleet_factory(count, **env)
        return fleet

    def cli_env(self, fleet: Workers) -> dict[str, str]:
        env: dict[str, str] = self._cli_env(SHARDCRAWL_TASK_QUEUE=fleet.task_queue)
        return env

    def site(self) -> SiteProcess:
        site: SiteProcess = self.site_factory(ips=("127.0.0.2", "127.0.0.3"), pages_per_host=30)
        return site


async def _s3_outage(
    outages: Outages,
    name: str,
    moto_endpoint: str,
    cut: Callable[[TcpForwarder], Awaitable[None]],
    seconds: float,
) -> None:
    """A crawl to S3 through a forwarder that ``cut`` breaks for ``seconds``."""
    site = outages.site()
    bucket = make_bucket(moto_endpoint)
    host, port = moto_endpoint.removeprefix("http://").split(":")
    forwarder = TcpForwarder(host, int(port))
    await forwarder.forward()
    fleet = outages.workers(2, SHARDCRAWL_S3_ENDPOINT_URL=forwarder.url)
    handle = await start_crawl(
        outages.client, _spec(site, f"s3://{bucket}/crawls"), fleet.task_queue
    )
    await _mid_crawl(site)
    await cut(forwarder)
    cut_at = time.monotonic()
    before = len(site.requests())
    shown = await _status_says_store_down(handle.id, outages.cli_env(fleet), within=seconds - 5)
    assert "down since" in shown
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - cut_at)))
    await forwarder.forward()
    report = await asyncio.wait_for(handle.result(), timeout=CRAWL_TIMEOUT)
    await forwarder.refuse()
    urls = await asyncio.to_thread(_s3_urls, moto_endpoint, bucket, handle.id)
    _assert_exactly_once(urls, site)
    assert report.pages_fetched == len(urls)
    assert len(site.requests()) > before, "the crawl was over before the outage"


async def _frozen_s3(outages: Outages, moto: subprocess.Popen[bytes], endpoint: str) -> None:
    """The S3 server itself stopped (SIGSTOP) for a minute: the crawl waits on boto3's
    timeouts and goes on."""
    site = outages.site()
    bucket = make_bucket(endpoint)
    fleet = outages.workers(2, SHARDCRAWL_S3_ENDPOINT_URL=endpoint)
    handle = await start_crawl(
        outages.client, _spec(site, f"s3://{bucket}/crawls"), fleet.task_queue
    )
    await _mid_crawl(site)
    moto.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        moto.send_signal(signal.SIGCONT)
    report = await asyncio.wait_for(handle.result(), timeout=CRAWL_TIMEOUT)
    urls = await asyncio.to_thread(_s3_urls, endpoint, bucket, handle.id)
    _assert_exactly_once(urls, site)
    assert report.pages_fetched == len(urls)


def _fill(disk: Path) -> Path:
    """Write a filler file until the disk is full."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _partial_files(out: Path) -> list[str]:
    """Item files under their final names that are not whole JSON lines."""
    bad = []
    for path in out.rglob("*.jsonl"):
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            bad.append(str(path))
            continue
        for line in data.splitlines():
            try:
                json.loads(line)
            except ValueError:
                bad.append(str(path))
                break
    return bad


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "shardcrawl-test", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def _full_disk(outages: Outages) -> None:
    site = outages.site()
    with _tmpfs(outages.tmp_path / "disk", "8m") as disk:
        out = disk / "crawls"
        fleet = outages.workers(2)
        handle = await start_crawl(outages.client, _spec(site, str(out)), fleet.task_queue)
        await _mid_crawl(site)
        filler = await asyncio.to_thread(_fill, disk)
        cut_at = time.monotonic()
        before = len(site.requests())
        shown = await _status_says_store_down(
            handle.id, outages.cli_env(fleet), within=OUTAGE_SECONDS - 5
        )
        assert "No space left on device" in shown
        while time.monotonic() - cut_at < OUTAGE_SECONDS:
            assert not await asyncio.to_thread(_partial_files, out)
            await asyncio.sleep(1)
        filler.unlink()
        report = await asyncio.wait_for(handle.result(), timeout=CRAWL_TIMEOUT)
        assert not _partial_files(out)
        urls = [item["url"] for item in read_items(out, handle.id)]
        _assert_exactly_once(urls, site)
        assert report.pages_fetched == len(urls)
        assert len(site.requests()) > before, "the crawl was over before the disk filled"


async def _store_refuses_for_good(outages: Outages) -> None:
    """An operator's problem (the items folder is now a file): the crawl fails at once,
    naming the store and the cause, rather than wait or drop pages."""
    site = outages.site()
    out = outages.tmp_path / "broken"
    fleet = outages.workers(1)
    handle = await start_crawl(outages.client, _spec(site, str(out)), fleet.task_queue)
    await _mid_crawl(site)
    items = out / handle.id / "items"
    items.rename(out / handle.id / "items-moved")
    items.write_text("not a folder")
    started = time.monotonic()
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=120)
    assert time.monotonic() - started < 60, "a permanent store error must fail fast"
    text = _chain(failed.value)
    assert "Not a directory" in text and out.as_uri() in text, text


def _chain(exc: BaseException) -> str:
    parts = []
    current: BaseException | None = exc
    while current is not None:
        parts.append(str(current))
        current = current.__cause__ or getattr(current, "cause", None)
    return " <- ".join(parts)


async def test_store_outages_lose_no_page(
    client, aws_test_env, moto_s3_endpoint, site_factory, fleet_factory, cli_env, tmp_path
) -> None:
    outages = Outages(client, tmp_path, site_factory, fleet_factory, cli_env)
    frozen_moto, frozen_endpoint = start_moto(tmp_path / "frozen-moto.log")
    try:
        await asyncio.gather(
            _s3_outage(outages, "refused", moto_s3_endpoint, TcpForwarder.refuse, REFUSED_SECONDS),
            _s3_outage(
                outages, "slowdown", moto_s3_endpoint, TcpForwarder.answer_503, OUTAGE_SECONDS
            ),
            _frozen_s3(outages, frozen_moto, frozen_endpoint),
            _full_disk(outages),
            _store_refuses_for_good(outages),
        )
    finally:
        stop_moto(frozen_moto)
