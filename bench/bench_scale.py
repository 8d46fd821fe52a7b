"""Scale benchmark: one crawl of a generated site of N pages (10k, 100k, 1M) by W worker
processes and the embedded Temporal dev server, measured from outside the crawl.

    .venv/bin/python bench/bench_scale.py --pages 10000 [--hosts 10] [--workers 2] [--shards 8]
        [--batch-size 100] [--concurrency-per-host 8] [--json-out FILE] [--keep DIR]

The site is plain (no link variants, no robots/trap/404 extras): M hosts on 127.0.0.2.. with
N/M pages each (``/p/i``) plus N/M/10 query pages (``/q/j?...``), so about 1.1 N URLs, all
reachable from host 0's ``/``. What is measured, from the crawl's start to its end:

* pages fetched (records in the output), wall seconds, pages/s;
* CPU seconds per 1,000 pages: the Temporal server and every worker process, from
  /proc/PID/stat (utime + stime + reaped children + live descendants). The site server and
  this process are reported apart, not summed in;
* peak RSS of each worker and of the Temporal server: VmRSS sampled every 0.5 s by a thread,
  and the kernel's VmHWM read just before the process is stopped.

After the crawl, from Temporal's history rather than the workflows' own numbers: every run of
the crawl and shard workflows (``ID``, ``ID/shard-i``, each possibly several runs through
continue-as-new), each run's event count, its largest Payload and largest event. And from the
output and the site's access log: pages recorded twice, reachable pages lost, pages fetched
twice. URLs are kept as 64-bit hashes, so the check stays small at a million pages.

Progress goes to stderr every 30 s; a summary to stdout; every figure to --json-out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _correctness import (  # noqa: E402
    MAX_DEPTH,
    check_access_log,
    check_output,
    expected_pages,
    lost_sample,
)
from _harness import loopback_hosts, start_workers, wait_for_pollers, warm_up_site  # noqa: E402
from _history import analyze_histories  # noqa: E402
from _proc import (  # noqa: E402
    RssSampler,
    cpu_seconds,
    machine_busy_seconds,
    mb,
    status_kb,
    tree_cpu_seconds,
)
from _progress import watch  # noqa: E402
from temporalio.client import Client  # noqa: E402

from shardcrawl.core import urls  # noqa: E402
from shardcrawl.models import CrawlSpec  # noqa: E402
from shardcrawl.temporal.client import CrawlClient  # noqa: E402
from shardcrawl.temporal.devserver import DevServer  # noqa: E402
from shardcrawl.temporal.local_processes import stop_processes  # noqa: E402
from shardcrawl.temporal.wire import data_converter  # noqa: E402
from shardcrawl.testing.sites.graph import SiteConfig  # noqa: E402
from shardcrawl.testing.sites.process import SiteProcess  # noqa: E402

# --------------------------------------------------------------------------- the crawl


def _error_chain(exc: BaseException) -> str:
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 6:
        parts.append(f"{type(seen).__name__}: {seen}")
        seen = getattr(seen, "cause", None) or seen.__cause__
    return " <- ".join(parts)


async def run_crawl(
    args: argparse.Namespace,
    site: SiteProcess,
    ips: list[str],
    work: Path,
    max_pages: int,
) -> dict[str, Any]:
    token = secrets.token_hex(3)
    crawl_id = f"scale-{args.pages}-{token}"
    task_queue = f"bench-scale-{token}"
    out_dir = work / "out"
    result: dict[str, Any] = {"crawl_id": crawl_id, "output": str(out_dir)}
    server = DevServer(
        headless=True, db_file=work / "temporal.db", log_file=work / "temporal.log"
    ).start()
    assert server.process is not None and site.pid is not None
    sampler = RssSampler(interval=0.5)
    sampler.track("temporal_server", server.process.pid)
    sampler.track("site_server", site.pid)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs = start_workers(
            args.workers, address=server.address, task_queue=task_queue, log_dir=work
        )
        for i, p in enumerate(procs):
            sampler.track(f"worker-{i}", p.pid)
        sampler.start()
        client = await Client.connect(server.address, data_converter=data_converter)
        result["worker_start_seconds"] = round(
            await wait_for_pollers(client, task_queue, args.workers), 2
        )
        crawl = CrawlClient(client, task_queue=task_queue)
        spec = CrawlSpec(
            seeds=[site.seed_url],
            allowed_domains=ips,
            max_depth=MAX_DEPTH,
            max_pages=max_pages,
            concurrency_per_host=args.concurrency_per_host,
            batch_size=args.batch_size,
            shards=args.shards,
            output=str(out_dir),
            allow_private_networks=True,
        )
        named = {"temporal_server": server.process.pid} | {
            f"worker-{i}": p.pid for i, p in enumerate(procs)
        }
        cpu_before = {name: tree_cpu_seconds(pid) for name, pid in named.items()}
        site_before = cpu_seconds(site.pid)
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        machine_before = machine_busy_seconds()
        load_before = os.getloadavg()[0]
        timeline: list[dict[str, Any]] = []
        start = time.monotonic()
        handle = await crawl.start(spec, crawl_id=crawl_id)
        watcher = asyncio.create_task(watch(handle, start, args.progress_every, sampler, timeline))
        report = None
        try:
            report = await asyncio.wait_for(handle.wait(), args.timeout or None)
            result["status"] = report.status
        except TimeoutError:
            result["status"] = "timeout"
            result["error"] = f"not done after {args.timeout} s; cancelled"
        except Exception as exc:
            result["status"] = "failed"
            result["error"] = _error_chain(exc)
        elapsed = time.monotonic() - start
        cpu_after = {name: tree_cpu_seconds(pid) for name, pid in named.items()}
        site_cpu = cpu_seconds(site.pid) - site_before
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        machine_after = machine_busy_seconds()
        machine = {k: machine_after[k] - machine_before[k] for k in machine_after}
        watcher.cancel()
        if result["status"] == "timeout":
            await handle.cancel()
        sampler.sample_once()
        result["wall_seconds"] = round(elapsed, 2)
        result["workflow_report"] = (
            {
                k: getattr(report, k)
                for k in (
                    "pages_fetched",
                    "requests",
                    "failures",
                    "duplicates_skipped",
                    "links_discovered",
                    "unfetched",
                    "elapsed_seconds",
                    "pages_per_second",
                )
            }
            if report is not None
            else None
        )
        per_proc = {name: round(cpu_after[name] - cpu_before[name], 2) for name in named}
        result["cpu"] = {
            "per_process_seconds": per_proc,
            "total_seconds": round(sum(per_proc.values()), 2),
            "site_server_seconds": round(site_cpu, 2),
            "bench_client_seconds": round(
                (self_after.ru_utime + self_after.ru_stime)
                - (self_before.ru_utime + self_before.ru_stime),
                2,
            ),
        }
        ours = sum(per_proc.values()) + site_cpu + result["cpu"]["bench_client_seconds"]
        result["cpu"]["machine_busy_seconds"] = round(machine["busy"], 2)
        result["cpu"]["machine_irq_seconds"] = round(machine["irq"], 2)
        result["cpu"]["machine_steal_seconds"] = round(machine["steal"], 2)
        other = machine["busy"] - machine["irq"] - machine["steal"] - ours
        result["cpu"]["other_programs_seconds"] = round(other, 2)  # ~0 when the machine is ours
        result["cpu"]["load_average_1min_before"] = round(load_before, 2)
        result["rss"] = {name: sampler.summary(name) for name in sampler.tracked}
        result["progress"] = timeline
        sampler.stop()
        stop_processes(procs)  # workers are done; free the CPU for reading the histories
        result["history"] = await analyze_histories(client, crawl_id, args.shards)
        db = [work / "temporal.db", work / "temporal.db-wal"]
        result["temporal_db_mb"] = round(sum(p.stat().st_size for p in db if p.exists()) / 2**20, 1)
        if result["status"] != "completed":
            for path in sorted(work.glob("worker-*.log")):
                tail = path.read_text(errors="replace")[-2000:]
                print(f"--- {path.name} (tail)\n{tail}", file=sys.stderr)
        return result
    finally:
        sampler.stop()
        stop_processes(procs)
        server.stop()


# --------------------------------------------------------------------------- main


def summarize(r: dict[str, Any]) -> list[str]:
    c, cpu, h, ok, site = r["config"], r["cpu"], r["history"], r["correctness"], r["site"]
    rss = r["rss"]
    pages = ok["records"]
    workers = [v for k, v in rss.items() if k.startswith("worker-")]
    lines = [
        f"site                 {c['expected_pages']} reachable pages on {c['hosts']} hosts "
        f"({c['pages_per_host']} + {c['pages_per_host'] // 10} per host), "
        f"fully reachable: {c['fully_reachable']}; hosts per shard {c['hosts_per_shard']}",
        f"crawl                {r['crawl_id']}: {r['status']}"
        + (f" ({r['error']})" if r.get("error") else ""),
        f"pages fetched        {pages} (workflow report: "
        f"{(r['workflow_report'] or {}).get('pages_fetched')}, site saw {site['requests']} "
        f"requests)",
        f"wall seconds         {r['wall_seconds']}",
        f"pages/s              {r['pages_per_second']}",
        f"CPU s / 1k pages     {r['cpu_seconds_per_1000_pages']} (server + workers: "
        f"{cpu['total_seconds']} s = {cpu['per_process_seconds']})",
        f"CPU (not counted)    site server {cpu['site_server_seconds']} s "
        f"({r['site_server_busy']:.0%} of one core), bench client "
        f"{cpu['bench_client_seconds']} s",
        f"machine CPU          busy {cpu['machine_busy_seconds']} s of {os.cpu_count()} cores x "
        f"{r['wall_seconds']} s (irq {cpu['machine_irq_seconds']} s, steal "
        f"{cpu['machine_steal_seconds']} s, other programs {cpu['other_programs_seconds']} s)",
        f"peak RSS server      {rss['temporal_server']['peak_rss_mb']} MB sampled, "
        f"VmHWM {rss['temporal_server']['vmhwm_mb']} MB",
        "peak RSS workers     "
        + ", ".join(f"{w['peak_rss_mb']} MB (VmHWM {w['vmhwm_mb']})" for w in workers),
        f"runs                 {h['runs_total']} over {h['workflow_ids']} workflow ids, "
        f"{h['continued_as_new']} continued-as-new ({h['runs_source']})",
        f"longest history      {h['longest_history_events']} events ({h['longest_history_run']})",
        f"largest payload      {h['largest_payload_bytes']} bytes in {h['largest_payload_event']}",
        f"largest event        {h['largest_event_bytes']} bytes ({h['largest_event_type']})",
        f"duplicate pages      {ok['duplicate_urls']} URLs in more than one record; "
        f"{site['pages_requested_more_than_once']} pages requested more than once",
        f"lost pages           {ok['lost_pages']} of {c['expected_pages']}; "
        f"unexpected URLs {ok['unexpected_urls']}",
    ]
    return lines


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the cleanup below stops the processes we started."""
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, required=True, help="N: pages_per_host = N / M")
    parser.add_argument("--hosts", type=int, default=10, help="M loopback hosts 127.0.0.2..")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency-per-host", type=int, default=8)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--keep", type=Path, help="work directory to keep (output, logs, db)")
    parser.add_argument("--progress-every", type=float, default=30.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=0.0, help="seconds; 0 means none")
    args = parser.parse_args()
    if args.pages < args.hosts:
        parser.error("--pages must be at least --hosts")

    tmp = None
    if args.keep:
        work = args.keep.resolve()
        if work.exists() and any(work.iterdir()):
            parser.error(f"--keep {work} must be empty or not exist")
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-scale-")
        work = Path(tmp.name)

    ips, port = loopback_hosts(args.hosts)
    config = SiteConfig(
        hosts=tuple(f"{ip}:{port}" for ip in ips),
        pages_per_host=args.pages // args.hosts,
        variants=False,
        extras=False,
    )
    seed = f"http://{config.hosts[0]}/"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; work dir {work}",
        file=sys.stderr,
        flush=True,
    )
    expected, site_info = expected_pages(config, seed)
    max_pages = site_info["expected_pages"] + max(1000, site_info["expected_pages"] // 10)
    print(
        f"site: {site_info['expected_pages']} reachable pages (generator took "
        f"{site_info['reachable_pages_seconds']} s); max_pages {max_pages}",
        file=sys.stderr,
        flush=True,
    )
    result: dict[str, Any] = {
        "config": {
            "pages": args.pages,
            "hosts": args.hosts,
            "pages_per_host": config.pages_per_host,
            "workers": args.workers,
            "shards": args.shards,
            "batch_size": args.batch_size,
            "concurrency_per_host": args.concurrency_per_host,
            "max_pages": max_pages,
            "max_depth": MAX_DEPTH,
            # How the shards split the hosts (shardcrawl.core.urls.shard_of): shards with none idle.
            "hosts_per_shard": [
                sum(urls.shard_of(f"http://{h}", args.shards) == i for h in config.hosts)
                for i in range(args.shards)
            ],
            **site_info,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(),
        }
    }
    try:
        with SiteProcess(config, work / "access.jsonl") as site:
            result["config"]["site_warm_up_seconds"] = round(warm_up_site(site), 2)
            result["config"]["site_server_rss_after_warm_up_mb"] = mb(
                status_kb(site.pid or 0, "VmRSS")
            )
            result |= asyncio.run(run_crawl(args, site, ips, work, max_pages))
        result["site"] = check_access_log(work / "access.jsonl")
        correctness, seen = check_output(work / "out", result["crawl_id"], expected)
        if correctness["lost_pages"]:
            correctness["lost_sample"] = lost_sample(config, seed, seen)
        del seen, expected
        result["correctness"] = correctness
        pages, wall = correctness["records"], result["wall_seconds"]
        result["pages_fetched"] = pages
        result["pages_per_second"] = round(pages / wall, 1) if wall else None
        total_cpu = result["cpu"]["total_seconds"]
        result["cpu_seconds_per_1000_pages"] = round(1000 * total_cpu / pages, 2) if pages else None
        result["site_server_busy"] = round(result["cpu"]["site_server_seconds"] / wall, 3)
        result["site_requests_per_second"] = round(result["site"]["requests"] / wall, 1)
        result["crawler_cores_busy"] = round(total_cpu / wall, 2)
        result["bench_peak_rss_mb"] = mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        for line in summarize(result):
            print(line, flush=True)
        if args.json_out:
            args.json_out.write_text(json.dumps(result, indent=2) + "\n")
        if args.keep:
            (work / "bench_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
