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
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import run_plain, shardcrawl_fleet, timed_crawl  # noqa: E402
from _proc import cpu_seconds  # noqa: E402

from shardcrawl.core.ports import free_port  # noqa: E402
from shardcrawl.models import shard_workflow_id  # noqa: E402
from shardcrawl.testing.sites.graph import SiteConfig, reachable_pages  # noqa: E402
from shardcrawl.testing.sites.process import SiteProcess  # noqa: E402

MAX_DEPTH = 1000


async def run_shardcrawl(
    site: SiteProcess,
    domains: list[str],
    per_host: int,
    workers: int,
    batch_size: int,
    tmp: Path,
    *,
    details: bool,
    warc: bool = False,
) -> dict[str, float]:
    crawl_id = f"bench-{workers}"
    spec = {
        "seeds": [site.seed_url],
        "allowed_domains": domains,
        "max_depth": MAX_DEPTH,
        "max_pages": 1_000_000,
        "concurrency_per_host": per_host,
        "batch_size": batch_size,
        "output": str(tmp / f"out-{workers}"),
        "allow_private_networks": True,
        "warc": warc,
    }
    async with shardcrawl_fleet(workers, tmp, name=crawl_id) as fleet:
        crawl = await timed_crawl(fleet, spec, crawl_id)
        if details:
            print(
                f"  CPU s: Temporal server {cpu_seconds(fleet.server_pid):.1f}, workers "
                f"{', '.join(f'{cpu_seconds(p.pid):.1f}' for p in fleet.workers)} "
                "(with start-up)",
                flush=True,
            )
            ids = [crawl_id] + [shard_workflow_id(crawl_id, i) for i in range(4)]
            events = size = 0
            for wid in ids:
                history = await fleet.client.get_workflow_handle(wid).fetch_history()
                events += len(history.events)
                size += sum(e.ByteSize() for e in history.events)
                print(f"  {wid}: {len(history.events)} history events", flush=True)
            per_1k = 1000 / max(1, crawl.report.pages_fetched)
            print(
                f"  history (last runs): {events * per_1k:.0f} events and "
                f"{size * per_1k / 1024:.0f} KiB per 1,000 pages",
                flush=True,
            )
    return {"pages": crawl.report.pages_fetched, "seconds": crawl.seconds, "cpu": crawl.cpu}


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
    parser.add_argument("--warc", action="store_true", help="shardcrawl writes WARC too")
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
            for name, concurrent_items in (
                ("plain scrapy (defaults)", 100),
                ("plain scrapy, items 4", 4),
            ):
                plain = run_plain(
                    [site.seed_url],
                    ips,
                    per_host=args.per_host,
                    max_depth=MAX_DEPTH,
                    concurrent_items=concurrent_items,
                    work_dir=tmp,
                )
                print(line(name, plain, base), flush=True)
                base = base or plain["pages"] / plain["seconds"]
        for n in (1, 2):
            if str(n) in only:
                r = asyncio.run(
                    run_shardcrawl(
                        site,
                        ips,
                        args.per_host,
                        n,
                        args.batch_size,
                        tmp,
                        details=args.details,
                        warc=args.warc,
                    )
                )
                name = f"shardcrawl {n} worker{'s' * (n > 1)}{', warc' * args.warc}"
                print(line(name, r, base), flush=True)


if __name__ == "__main__":
    main()
