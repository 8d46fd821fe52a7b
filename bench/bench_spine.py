"""Benchmark of the crawl spine: the same generated site crawled by plain Scrapy and by
shardcrawl with 1 and 2 workers, in one run. Prints pages/s and CPU seconds per 1,000 pages,
every process counted (the Temporal server and workers; the site server is not the crawler).

Plain Scrapy runs twice: with its defaults, and with CONCURRENT_ITEMS=4 as shardcrawl's batch
settings use, so the gain from that one setting is visible apart from the architecture.

    .venv/bin/python bench/bench_spine.py [--pages 5000] [--hosts 5] [--per-host 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from temporalio.client import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shardcrawl.contracts import CrawlReport  # noqa: E402
from shardcrawl.devserver import DevServer  # noqa: E402
from shardcrawl.fleet import worker_command  # noqa: E402
from shardcrawl.sites.graph import SiteConfig, reachable_pages  # noqa: E402
from shardcrawl.sites.process import SiteProcess, free_port  # noqa: E402
from shardcrawl.wire import data_converter  # noqa: E402

MAX_DEPTH = 1000
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def run_plain(
    site: SiteProcess, domains: list[str], per_host: int, concurrent_items: int
) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "plain_scrapy.py"),
            site.seed_url,
            ",".join(domains),
            str(per_host),
            str(MAX_DEPTH),
            str(concurrent_items),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def run_shardcrawl(
    site: SiteProcess,
    domains: list[str],
    per_host: int,
    workers: int,
    batch_size: int,
    tmp: Path,
    *,
    details: bool,
) -> dict[str, float]:
    server = DevServer(headless=True, db_file=tmp / f"bench-{workers}.db").start()
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=server.address,
        SHARDCRAWL_TASK_QUEUE="bench",
        SHARDCRAWL_LOG_LEVEL="WARNING",
    )
    procs = [subprocess.Popen(worker_command(), env=env, cwd=ROOT) for _ in range(workers)]
    try:
        client = await Client.connect(server.address, data_converter=data_converter)
        await asyncio.sleep(3)  # workers import Scrapy and poll before the clock starts
        assert server.process is not None
        cpu_before = sum(cpu_seconds(p.pid) for p in [server.process, *procs])
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        spec = {
            "seeds": [site.seed_url],
            "allowed_domains": domains,
            "max_depth": MAX_DEPTH,
            "max_pages": 1_000_000,
            "concurrency_per_host": per_host,
            "batch_size": batch_size,
            "output": str(tmp / f"out-{workers}"),
            "allow_private_networks": True,
        }
        report: CrawlReport = await client.execute_workflow(
            "CrawlWorkflow",
            spec,
            id=f"bench-{workers}",
            task_queue="bench",
            result_type=CrawlReport,
        )
        elapsed = time.monotonic() - start
        if details:
            print(
                f"  CPU s: Temporal server {cpu_seconds(server.process.pid):.1f}, workers "
                f"{', '.join(f'{cpu_seconds(p.pid):.1f}' for p in procs)} (with start-up)",
                flush=True,
            )
        cpu = sum(cpu_seconds(p.pid) for p in [server.process, *procs]) - cpu_before
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu += (self_after.ru_utime + self_after.ru_stime) - (
            self_before.ru_utime + self_before.ru_stime
        )
        if details:
            ids = [f"bench-{workers}"] + [f"bench-{workers}/shard-{i}" for i in range(4)]
            events = size = 0
            for wid in ids:
                history = await client.get_workflow_handle(wid).fetch_history()
                events += len(history.events)
                size += sum(e.ByteSize() for e in history.events)
                print(f"  {wid}: {len(history.events)} history events", flush=True)
            per_1k = 1000 / max(1, report.pages_fetched)
            print(
                f"  history (last runs): {events * per_1k:.0f} events and "
                f"{size * per_1k / 1024:.0f} KiB per 1,000 pages",
                flush=True,
            )
        return {"pages": report.pages_fetched, "seconds": elapsed, "cpu": cpu}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        server.stop()


def line(name: str, r: dict[str, float], base: float | None) -> str:
    rate = r["pages"] / r["seconds"]
    rel = f"  {rate / base:.2f}x plain" if base else ""
    return (
        f"{name:<24} pages {r['pages']:>6}  {r['seconds']:7.1f} s  {rate:8.1f} pages/s  "
        f"{1000 * r['cpu'] / r['pages']:6.1f} CPU s/1k pages{rel}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--per-host", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--only", choices=["plain", "1", "2"], action="append")
    parser.add_argument(
        "--details",
        action="store_true",
        help="also print CPU per process and each workflow's history size",
    )
    args = parser.parse_args()
    ips = [f"127.0.0.{i}" for i in range(2, 2 + args.hosts)]
    port = free_port(ips[0], also=ips)
    config = SiteConfig(
        hosts=tuple(f"{ip}:{port}" for ip in ips),
        pages_per_host=args.pages // args.hosts,
        variants=False,
        extras=False,
    )
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        SiteProcess(config, Path(tmpdir) / "access.jsonl") as site,
    ):
        tmp = Path(tmpdir)
        expected = len(reachable_pages(config, [site.seed_url], max_depth=MAX_DEPTH))
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; site: {expected} pages on {args.hosts} hosts, "
            f"{args.per_host} concurrent per host, batch size {args.batch_size}",
            flush=True,
        )
        only = args.only or ["plain", "1", "2"]
        base = None
        if "plain" in only:
            plain = run_plain(site, ips, args.per_host, 100)
            base = plain["pages"] / plain["seconds"]
            print(line("plain scrapy (defaults)", plain, None), flush=True)
            tuned = run_plain(site, ips, args.per_host, 4)
            print(line("plain scrapy, items 4", tuned, base), flush=True)
        for n in (1, 2):
            if str(n) in only:
                r = asyncio.run(
                    run_shardcrawl(
                        site, ips, args.per_host, n, args.batch_size, tmp, details=args.details
                    )
                )
                print(line(f"shardcrawl {n} worker{'s' * (n > 1)}", r, base), flush=True)


if __name__ == "__main__":
    main()
