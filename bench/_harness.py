"""Helpers shared by the benchmarks: the test site, the Temporal dev server and worker processes
on this machine (what /proc says about them: _proc.py); the plain Scrapy baseline
(plain_scrapy.py) and a timed shardcrawl crawl on a fleet of its own.

Every process is started here and stopped by its PID (never by name).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _checkout import ROOT
from _proc import machine_busy_seconds, tree_cpu_seconds
from temporalio.api.enums.v1 import DescribeTaskQueueMode, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from shardcrawl.core.ports import free_port
from shardcrawl.models import CrawlReport
from shardcrawl.temporal.devserver import DevServer
from shardcrawl.temporal.local_processes import start_worker, stop_processes
from shardcrawl.temporal.wire import data_converter
from shardcrawl.testing.sites.graph import SiteConfig
from shardcrawl.testing.sites.process import SiteProcess

__all__ = [
    "Fleet",
    "TimedCrawl",
    "loopback_hosts",
    "loopback_ips",
    "run_plain",
    "server_requests",
    "shardcrawl_fleet",
    "start_workers",
    "timed_crawl",
    "wait_for_pollers",
    "warm_up_site",
]

WARM_UP_PATH = "/__bench_warm_up__"


# --------------------------------------------------------------------------- processes


def loopback_ips(count: int) -> list[str]:
    """``count`` distinct loopback IPs 127.0.0.2, 127.0.0.3, ... 127.0.0.254, 127.0.1.1, ...:
    all of 127.0.0.0/8 is loopback on Linux; last octets 0 and 255 are left out, and so is
    127.0.0.1 (the Temporal server's). Never an address off this machine."""
    if not 1 <= count <= 60_000:
        raise ValueError(f"loopback hosts must be 1..60000, got {count}")
    ips: list[str] = []
    for third in range(256):
        for fourth in range(2 if third == 0 else 1, 255):
            ips.append(f"127.0.{third}.{fourth}")
            if len(ips) == count:
                return ips
    raise AssertionError("unreachable: 60,000 fit in 127.0.0.0/16")


def loopback_hosts(count: int) -> tuple[list[str], int]:
    """``count`` loopback IPs (``loopback_ips``) and one port free on all of them."""
    if not 1 <= count <= 250:
        raise ValueError(f"--hosts must be 1..250, got {count}")
    ips = loopback_ips(count)
    return ips, free_port(ips[0], also=ips)


def warm_up_site(site: SiteProcess, timeout: float = 600.0) -> float:
    """Make the site server build its link graph now (it does so lazily on the first request,
    which at a million pages takes many seconds) so the crawl's clock does not pay for it.
    Asks for a path that is no page (a 404), and returns the seconds it took."""
    config: SiteConfig = site.config
    start = time.monotonic()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    try:
        with opener.open(f"http://{config.hosts[0]}{WARM_UP_PATH}", timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    return time.monotonic() - start


def start_workers(
    count: int,
    *,
    address: str,
    task_queue: str,
    log_dir: Path,
    log_level: str = "WARNING",
    roles: Sequence[str] = (),
) -> list[subprocess.Popen[bytes]]:
    """``count`` worker processes (``python -m worker``) with their output in log_dir; with
    ``roles``, one worker per role instead (``--role workflows``, ``--role activities``)."""
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=address,
        SHARDCRAWL_TASK_QUEUE=task_queue,
        SHARDCRAWL_LOG_LEVEL=log_level,
    )
    flags = [["--role", role] for role in roles] or [[] for _ in range(count)]
    return [
        start_worker(log_dir / f"worker-{index}.log", env=env, args=args, cwd=ROOT)
        for index, args in enumerate(flags)
    ]


async def _poller_counts(client: Client, task_queue: str) -> list[int]:
    """Distinct poller identities on the workflow and the activity task queue. The plain
    describe sees the root partition only (a worker can take a minute to land there), so the
    enhanced mode, which reports every partition, is asked too; the larger count wins."""
    types = [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY]
    counts = []
    for tq_type in types:
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=tq_type,
            )
        )
        counts.append(len({p.identity for p in resp.pollers}))
    with contextlib.suppress(RPCError):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
                report_pollers=True,
                task_queue_types=types,
            )
        )
        for i, tq_type in enumerate(types):
            identities = {
                p.identity
                for version in resp.versions_info.values()
                for p in version.types_info[tq_type].pollers
                if tq_type in version.types_info
            }
            counts[i] = max(counts[i], len(identities))
    return counts


async def wait_for_pollers(
    client: Client, task_queue: str, count: int, *, timeout: float = 120.0
) -> float:
    """Wait until ``count`` distinct workers poll both the workflow and the activity task
    queue (each worker then has imported Scrapy and connected). Returns the seconds waited."""
    start = time.monotonic()
    while True:
        seen = await _poller_counts(client, task_queue)
        if min(seen) >= count:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"only {seen} pollers on {task_queue} after {timeout:.0f}s")
        await asyncio.sleep(0.25)


# --------------------------------------------------------------------------- the crawlers

# A host list longer than this goes to plain_scrapy.py in a file (Linux caps one argument at
# 128 KiB).
_ARG_MAX = 32 * 1024


def _list_arg(items: list[str], work_dir: Path, name: str) -> str:
    joined = ",".join(items)
    if len(joined) <= _ARG_MAX:
        return joined
    path = work_dir / f"{name}.txt"
    path.write_text("\n".join(items) + "\n", encoding="utf-8")
    return f"@{path}"


def run_plain(
    seeds: list[str],
    domains: list[str],
    *,
    per_host: int,
    max_depth: int,
    concurrent_items: int,
    concurrent_requests: int | None = None,
    work_dir: Path,
) -> dict[str, float]:
    """One crawl by plain Scrapy (bench/plain_scrapy.py) in a subprocess: its JSON line, with
    ``pages``, ``seconds`` and ``cpu`` (CPU seconds of the crawl, start-up not counted).
    ``concurrent_requests`` None keeps plain_scrapy.py's per_host x len(domains)."""
    command = [
        sys.executable,
        str(ROOT / "bench" / "plain_scrapy.py"),
        _list_arg(seeds, work_dir, "plain-seeds"),
        _list_arg(domains, work_dir, "plain-domains"),
        str(per_host),
        str(max_depth),
        str(concurrent_items),
    ]
    if concurrent_requests is not None:
        command.append(str(concurrent_requests))
    # This checkout's spiders/, not whichever one the virtualenv's editable install names.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=path),
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@dataclass
class Fleet:
    """An embedded Temporal dev server and worker processes of our own, and a client."""

    server: DevServer
    workers: list[subprocess.Popen[bytes]]
    client: Client
    task_queue: str
    log_dir: Path

    @property
    def server_pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def worker_log_tails(self, chars: int = 2000) -> str:
        return "\n".join(
            f"--- {path.name} (tail)\n{path.read_text(errors='replace')[-chars:]}"
            for path in sorted(self.log_dir.glob("worker-*.log"))
        )


@contextlib.asynccontextmanager
async def shardcrawl_fleet(
    workers: int,
    work_dir: Path,
    *,
    name: str,
    task_queue: str = "bench",
    roles: Sequence[str] = (),
) -> AsyncIterator[Fleet]:
    """A dev server (its database in work_dir/NAME.db) and ``workers`` workers (their logs in
    work_dir/NAME/), ready: every worker polls both task queues. With ``roles``, one worker
    per role, and ready once each queue has its poller. Stopped by PID on exit."""
    log_dir = work_dir / name
    log_dir.mkdir(parents=True, exist_ok=True)
    server = DevServer(headless=True, db_file=work_dir / f"{name}.db").start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs = start_workers(
            workers, address=server.address, task_queue=task_queue, log_dir=log_dir, roles=roles
        )
        client = await Client.connect(server.address, data_converter=data_converter)
        await wait_for_pollers(client, task_queue, 1 if roles else workers)
        yield Fleet(server, procs, client, task_queue, log_dir)
    finally:
        stop_processes(procs)
        server.stop()


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_requests(server: DevServer) -> Counter[str]:
    """What the Temporal server has been asked so far, from its Prometheus endpoint: RPCs to
    its frontend (``frontend OPERATION``, e.g. RecordActivityTaskHeartbeat) and calls to its
    database (``db OPERATION``), each summed over services and namespaces. Two readings, one
    before and one after a crawl, show what the server's CPU went on."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(server.metrics_url, timeout=30) as response:
        text = response.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        for metric, label in (("service_requests{", "frontend"), ("persistence_requests{", "db")):
            if not line.startswith(metric):
                continue
            if label == "frontend" and 'service_name="frontend"' not in line:
                continue
            operation = line.split('operation="', 1)[1].split('"', 1)[0]
            counts[f"{label} {operation}"] += int(float(line.rsplit(" ", 1)[1]))
    return counts


@dataclass(frozen=True)
class TimedCrawl:
    """One crawl workflow run to its end, and the CPU seconds each process spent meanwhile."""

    report: CrawlReport
    seconds: float
    server_cpu: float
    worker_cpu: list[float]
    client_cpu: float  # this process: starting the crawl and waiting for it
    machine_busy: float  # every core of the machine, less interrupts and steal
    server_requests: Counter[str]  # what the server was asked during the crawl

    @property
    def cpu(self) -> float:
        """Every process of the crawler: the Temporal server, the workers and the client."""
        return self.server_cpu + sum(self.worker_cpu) + self.client_cpu


async def timed_crawl(fleet: Fleet, spec: dict[str, Any], crawl_id: str) -> TimedCrawl:
    """Run CrawlWorkflow(spec) as ``crawl_id`` on the fleet and wait for its report. CPU from
    /proc of the server and the workers (with their descendants), over the crawl only."""
    pids = [fleet.server_pid, *(p.pid for p in fleet.workers)]
    asked_before = server_requests(fleet.server)
    before = [tree_cpu_seconds(pid) for pid in pids]
    self_before = _self_cpu()
    machine_before = machine_busy_seconds()
    start = time.monotonic()
    report: CrawlReport = await fleet.client.execute_workflow(
        "CrawlWorkflow",
        spec,
        id=crawl_id,
        task_queue=fleet.task_queue,
        result_type=CrawlReport,
    )
    seconds = time.monotonic() - start
    after = [tree_cpu_seconds(pid) for pid in pids]
    machine = {k: v - machine_before[k] for k, v in machine_busy_seconds().items()}
    asked = server_requests(fleet.server)
    asked.subtract(asked_before)
    used = [a - b for a, b in zip(after, before, strict=True)]
    return TimedCrawl(
        report=report,
        seconds=seconds,
        server_cpu=used[0],
        worker_cpu=used[1:],
        client_cpu=_self_cpu() - self_before,
        machine_busy=machine["busy"] - machine["irq"] - machine["steal"],
        server_requests=+asked,
    )
