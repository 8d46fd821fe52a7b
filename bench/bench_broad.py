"""Broad-crawl benchmark: many small hosts, every one a seed, with cross-host links, crawled in
one run by plain Scrapy (its defaults, then CONCURRENT_ITEMS=4; the same spider) and by
shardcrawl with 1 and 2 workers.

    .venv/bin/python bench/bench_broad.py [--hosts 1000] [--pages-per-host 20] [--per-host 2]
        [--batch-size 100] [--plain-concurrency 32] [--shards 4] [--only plain|1|2|roles ...]
        [--details] [--watch SECONDS]

The site is plain (no link variants, no robots.txt or trap extras: robots.txt answers 404, so
everything is allowed, and both crawlers obey it): H hosts on distinct loopback addresses
127.0.0.2, ... 127.0.1.1, ... with P pages (``/``, ``/p/i``) and P/10 query pages each, 30% of
the random links to another host. Every host's ``/`` is a seed; the allowed domains are the
host IPs. Plain Scrapy gets CONCURRENT_REQUESTS=--plain-concurrency; both crawlers get at most
--per-host requests to one host at a time.

Per crawler: pages, wall seconds, pages/s, CPU ms per page of every process of the crawler
(plain: the Scrapy process; shardcrawl: the Temporal server, the workers and this client), the
Temporal server's share of it, and the history events and KiB per 1,000 pages over every run
of the crawl workflow and of its shards (continue-as-new runs included). Then what the site
server saw of each crawler, against the pages the generator says are reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    WARM_UP_PATH,
    loopback_ips,
    run_plain,
    shardcrawl_fleet,
    timed_crawl,
    warm_up_site,
)
from _history import HistoryTotals, history_totals  # noqa: E402
from _proc import cpu_seconds, machine_busy_seconds  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.service import RPCError  # noqa: E402

from shardcrawl.core.ports import free_port  # noqa: E402
from shardcrawl.models import CrawlSpec  # noqa: E402
from shardcrawl.temporal.client import CrawlHandle  # noqa: E402
from shardcrawl.testing.sites.graph import SiteConfig, canonical_page_url, reachable_pages  # noqa: E402
from shardcrawl.testing.sites.process import SiteProcess  # noqa: E402

MAX_DEPTH = 1000
NAME_WIDTH = 26


class SiteLog:
    """What the site server logged since the last look: its access log, read from an offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def since_last(self) -> dict[str, int]:
        time.sleep(0.5)  # the server flushes its log every 0.1 s
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line being written waits for the next look
        self.offset += end
        pages: set[str] = set()
        requests = robots = errors = 0
        for raw in data[:end].splitlines():
            entry = json.loads(raw)
            if entry["path"] == WARM_UP_PATH:
                continue
            if entry["path"] == "/robots.txt":
                robots += 1
                continue
            requests += 1
            errors += entry["status"] != 200
            pages.add(canonical_page_url(entry["host"], entry["path"]))
        return {"requests": requests, "distinct": len(pages), "robots": robots, "non_200": errors}


def per_1k(value: float, pages: int) -> float:
    return 1000 * value / pages if pages else float("nan")


def line(
    name: str,
    pages: int,
    seconds: float,
    cpu: float,
    *,
    server_cpu: float | None = None,
    history: HistoryTotals | None = None,
    base: float | None = None,
) -> str:
    rate = pages / seconds if seconds else float("nan")
    server = f"{per_1k(server_cpu, pages):6.2f}" if server_cpu is not None else f"{'-':>6}"
    if history is not None:
        events = f"{per_1k(history.events, pages):6.0f}"
        kib = f"{per_1k(history.history_bytes, pages) / 1024:6.0f}"
    else:
        events = kib = f"{'-':>6}"
    rel = f"  {rate / base:.2f}x plain" if base else ""
    return (
        f"{name:<{NAME_WIDTH}} pages {pages:>7}  {seconds:7.1f} s  {rate:8.1f} pages/s  "
        f"{per_1k(cpu, pages):6.2f} CPU ms/page  server {server} ms/page  "
        f"history {events} events {kib} KiB /1k pages{rel}"
    )


def site_line(seen: dict[str, int], site_cpu: float, other_cpu: float, expected: int) -> str:
    """What the site server saw, and the CPU other programs took meanwhile (the machine's busy
    time less the crawler's and the site server's: near 0 when the machine is ours)."""
    same = "" if seen["distinct"] == expected == seen["requests"] else "  <-- differs"
    return (
        f"{'':<{NAME_WIDTH}} site saw {seen['requests']} page requests ({seen['distinct']} "
        f"distinct of {expected} reachable, {seen['non_200']} not 200), {seen['robots']} "
        f"robots.txt; site server CPU {per_1k(site_cpu, max(1, seen['requests'])):.2f} "
        f"ms/page; other programs {other_cpu:.1f} CPU s{same}"
    )


def plain_run(
    args: argparse.Namespace, seeds: list[str], ips: list[str], items: int, tmp: Path
) -> dict[str, Any]:
    before = machine_busy_seconds()
    result: dict[str, Any] = run_plain(
        seeds,
        ips,
        per_host=args.per_host,
        max_depth=MAX_DEPTH,
        concurrent_items=items,
        concurrent_requests=args.plain_concurrency,
        work_dir=tmp,
    )
    machine = {k: v - before[k] for k, v in machine_busy_seconds().items()}
    result["machine_busy"] = machine["busy"] - machine["irq"] - machine["steal"]
    return result


async def watch(client: Client, crawl_id: str, every_seconds: float) -> None:
    """What ``shardcrawl run`` and ``status --watch`` ask while a crawl runs: its status
    (a query to the crawl and to each shard), every ``every_seconds``."""
    handle = CrawlHandle(client, client.get_workflow_handle(crawl_id))
    while True:
        await asyncio.sleep(every_seconds)
        with contextlib.suppress(RPCError):
            await handle.status()


async def run_shardcrawl(
    args: argparse.Namespace,
    seeds: list[str],
    domains: list[str],
    max_pages: int,
    workers: int,
    tmp: Path,
    roles: tuple[str, ...] = (),
) -> tuple[int, float, Any, HistoryTotals]:
    crawl_id = f"broad-{workers}w{'-roles' * bool(roles)}"
    spec = {
        "seeds": seeds,
        "allowed_domains": domains,
        "max_depth": MAX_DEPTH,
        "max_pages": max_pages,
        "concurrency_per_host": args.per_host,
        "batch_size": args.batch_size,
        "shards": args.shards,
        "output": str(tmp / f"out-{workers}"),
        "allow_private_networks": True,
        "warc": args.warc,
    }
    CrawlSpec.model_validate(spec)  # a limit of the spec fails here, before any server starts
    async with shardcrawl_fleet(workers, tmp, name=crawl_id, roles=roles) as fleet:
        watcher = None
        if args.watch:
            watcher = asyncio.create_task(watch(fleet.client, crawl_id, args.watch))
        try:
            crawl = await timed_crawl(fleet, spec, crawl_id)
        except BaseException:
            print(fleet.worker_log_tails(), file=sys.stderr, flush=True)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        history = await history_totals(fleet.client, crawl_id)
    report = crawl.report
    if args.details:
        print(
            f"  CPU s over the crawl: Temporal server {crawl.server_cpu:.1f}, workers "
            f"{', '.join(f'{c:.1f}' for c in crawl.worker_cpu)}, client {crawl.client_cpu:.1f}; "
            f"report: {report.pages_fetched} pages, {report.requests} requests, "
            f"{report.failures} failures, {report.unfetched} unfetched; history: "
            f"{history.runs} runs of {history.workflow_ids} workflows, {history.events} events, "
            f"{history.history_bytes / 2**20:.1f} MiB",
            flush=True,
        )
        batches = history.activities["crawl_batch"]
        print(
            f"  activities scheduled: {dict(history.activities.most_common())} "
            f"({report.requests / max(1, batches):.1f} requests a crawl_batch); signals "
            f"received: {dict(history.signals.most_common())}",
            flush=True,
        )
        # Every kind of event, with its KiB: where history's events and bytes go.
        kinds = ", ".join(
            f"{kind.lower()} {count} ({history.event_bytes[kind] / 1024:.0f} KiB)"
            for kind, count in history.event_types.most_common()
        )
        print(f"  events: {kinds}", flush=True)
        pages = max(1, report.pages_fetched)
        asked = ", ".join(
            f"{name} {1000 * count / pages:.0f}"
            for name, count in crawl.server_requests.most_common()
            if 1000 * count / pages >= 1
        )
        print(f"  server calls per 1k pages: {asked}", flush=True)
    return report.pages_fetched, crawl.seconds, crawl, history


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the cleanup stops the processes this run started."""
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--pages-per-host", type=int, default=20)
    parser.add_argument("--per-host", type=int, default=2, help="concurrent requests per host")
    parser.add_argument("--batch-size", type=int, default=100, help="shardcrawl batch size")
    parser.add_argument("--shards", type=int, default=4, help="shardcrawl shards")
    parser.add_argument(
        "--plain-concurrency", type=int, default=32, help="plain Scrapy's CONCURRENT_REQUESTS"
    )
    parser.add_argument(
        "--only",
        choices=["plain", "1", "2", "roles"],
        action="append",
        help="roles: one worker of workflows and one of activities (not run unless asked)",
    )
    parser.add_argument("--warc", action="store_true", help="shardcrawl writes WARC too")
    parser.add_argument(
        "--details", action="store_true", help="also print each shardcrawl run's CPU split"
    )
    parser.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="ask the crawl's status every SECONDS meanwhile, as shardcrawl run's display does",
    )
    args = parser.parse_args()
    ips = loopback_ips(args.hosts)
    port = free_port(ips[0], also=ips)
    config = SiteConfig(
        hosts=tuple(f"{ip}:{port}" for ip in ips),
        pages_per_host=args.pages_per_host,
        variants=False,
        extras=False,
    )
    seeds = [f"http://{host}/" for host in config.hosts]
    expected = len(reachable_pages(config, seeds, max_depth=MAX_DEPTH))
    on_site = len(config.hosts) * (config.pages_per_host + config.query_pages)
    max_pages = expected + max(1000, expected // 10)
    only = args.only or ["plain", "1", "2"]
    with (
        tempfile.TemporaryDirectory(prefix="bench-broad-") as tmpdir,
        SiteProcess(config, Path(tmpdir) / "access.jsonl", ready_timeout=300) as site,
    ):
        tmp = Path(tmpdir)
        assert site.pid is not None
        warm_up_site(site)
        log = SiteLog(site.log_path)
        log.since_last()
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; site: {expected} reachable pages ({on_site} on the "
            f"site) on {args.hosts} hosts ({config.pages_per_host} + {config.query_pages} a "
            f"host), every host a seed; {args.per_host} concurrent per host; plain Scrapy "
            f"CONCURRENT_REQUESTS {args.plain_concurrency}; shardcrawl batch size "
            f"{args.batch_size}, {args.shards} shards",
            flush=True,
        )
        base = None
        pages_by_crawler: dict[str, int] = {}

        def measured(name: str, run: Any) -> Any:
            site_before = cpu_seconds(site.pid or 0)
            try:
                result = run()
            except Exception as exc:
                traceback.print_exc()
                print(f"{name:<{NAME_WIDTH}} FAILED: {type(exc).__name__}: {exc}", flush=True)
                log.since_last()
                return None
            site_cpu = cpu_seconds(site.pid or 0) - site_before
            return result, log.since_last(), site_cpu

        if "plain" in only:
            for name, items in (("plain scrapy (defaults)", 100), ("plain scrapy, items 4", 4)):
                out = measured(name, lambda items=items: plain_run(args, seeds, ips, items, tmp))
                if out is None:
                    continue
                r, seen, site_cpu = out
                rate = r["pages"] / r["seconds"]
                print(line(name, r["pages"], r["seconds"], r["cpu"], base=base), flush=True)
                other = r["machine_busy"] - r["cpu_total"] - site_cpu
                print(site_line(seen, site_cpu, other, expected), flush=True)
                if r.get("errors"):
                    print(f"{'':<{NAME_WIDTH}} {r['errors']} download errors", flush=True)
                pages_by_crawler[name] = r["pages"]
                base = base or rate
        variants = [(n, f"shardcrawl {n} worker{'s' * (n > 1)}", ()) for n in (1, 2)]
        variants.append((2, "shardcrawl 2, by role", ("workflows", "activities")))
        for n, name, roles in variants:
            if ("roles" if roles else str(n)) not in only:
                continue
            name += ", warc" * args.warc
            out = measured(
                name,
                lambda n=n, roles=roles: asyncio.run(
                    run_shardcrawl(args, seeds, ips, max_pages, n, tmp, roles)
                ),
            )
            if out is None:
                continue
            (pages, seconds, crawl, history), seen, site_cpu = out
            print(
                line(
                    name,
                    pages,
                    seconds,
                    crawl.cpu,
                    server_cpu=crawl.server_cpu,
                    history=history,
                    base=base,
                ),
                flush=True,
            )
            other = crawl.machine_busy - crawl.cpu - site_cpu
            print(site_line(seen, site_cpu, other, expected), flush=True)
            pages_by_crawler[name] = pages
        counts = set(pages_by_crawler.values())
        verdict = "yes" if counts == {expected} else f"NO: {pages_by_crawler}"
        print(f"every crawler fetched the {expected} reachable pages: {verdict}", flush=True)


if __name__ == "__main__":
    main()
