"""Helpers shared by the benchmarks: the test site, the Temporal dev server and worker processes
on this machine, and what /proc says about them (CPU seconds, resident memory).

Every process is started here and stopped by its PID (never by name).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import DescribeTaskQueueMode, TaskQueueType  # noqa: E402
from temporalio.api.taskqueue.v1 import TaskQueue  # noqa: E402
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.service import RPCError  # noqa: E402

from shardcrawl.fleet import worker_command  # noqa: E402
from shardcrawl.sites.graph import SiteConfig  # noqa: E402
from shardcrawl.sites.process import SiteProcess, free_port  # noqa: E402

__all__ = [
    "ROOT",
    "RssSampler",
    "cpu_seconds",
    "descendants",
    "loopback_hosts",
    "machine_busy_seconds",
    "start_workers",
    "status_kb",
    "tree_cpu_seconds",
    "wait_for_pollers",
    "warm_up_site",
]

TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP_PATH = "/__bench_warm_up__"


# --------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str]:
    # The command name may hold spaces and parentheses: split after the last ')'.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process and its reaped children (cutime + cstime), from /proc."""
    fields = _stat_fields(pid)
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def machine_busy_seconds() -> dict[str, float]:
    """CPU seconds all cores of the machine spent busy since boot, from /proc/stat: ``busy``
    (everything but idle and iowait) and, within it, ``irq`` (hard and soft interrupts, where
    loopback networking is partly accounted, not charged to any process) and ``steal`` (taken
    by the hypervisor). Over a run, busy less what the run's processes used is what other
    programs and the kernel took."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user and nice)
    return {
        "busy": (sum(f[:8]) - f[3] - f[4]) / TICKS,
        "irq": (f[5] + f[6]) / TICKS,
        "steal": f[7] / TICKS,
    }


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children, grandchildren, ...), from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(children.get(child, []))
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its reaped children and its live descendants."""
    total = cpu_seconds(pid)
    for child in descendants(pid):
        # A child that exits between the listing and the read is reaped into cutime.
        with contextlib.suppress(OSError):
            total += cpu_seconds(child)
    return total


def status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` figure of /proc/PID/status (VmRSS, VmHWM, ...), None if gone or absent."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class _Tracked:
    pid: int
    peak_rss_kb: int = 0
    peak_tree_rss_kb: int = 0
    max_descendants: int = 0
    samples: int = 0


@dataclass
class RssSampler:
    """Samples VmRSS of named processes (and of their process trees) every ``interval``
    seconds on a daemon thread and keeps each one's peak."""

    interval: float = 0.5
    tracked: dict[str, _Tracked] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def track(self, name: str, pid: int) -> None:
        with self._lock:
            self.tracked[name] = _Tracked(pid)

    def start(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def sample_once(self) -> None:
        with self._lock:
            items = list(self.tracked.values())
        for t in items:
            own = status_kb(t.pid, "VmRSS")
            if own is None:
                continue
            kids = descendants(t.pid)
            tree = own + sum(status_kb(k, "VmRSS") or 0 for k in kids)
            t.peak_rss_kb = max(t.peak_rss_kb, own)
            t.peak_tree_rss_kb = max(t.peak_tree_rss_kb, tree)
            t.max_descendants = max(t.max_descendants, len(kids))
            t.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def summary(self, name: str) -> dict[str, float | int | None]:
        """Peaks in MB: sampled VmRSS, sampled tree RSS, and the kernel's VmHWM (read now, so
        call this while the process still lives)."""
        t = self.tracked[name]
        hwm = status_kb(t.pid, "VmHWM")
        return {
            "pid": t.pid,
            "peak_rss_mb": round(t.peak_rss_kb / 1024, 1),
            "vmhwm_mb": round(hwm / 1024, 1) if hwm is not None else None,
            "peak_tree_rss_mb": round(t.peak_tree_rss_kb / 1024, 1),
            "max_live_descendants": t.max_descendants,
            "samples": t.samples,
        }


# --------------------------------------------------------------------------- processes


def loopback_hosts(count: int) -> tuple[list[str], int]:
    """``count`` loopback IPs 127.0.0.2.. and one port free on all of them."""
    if not 1 <= count <= 250:
        raise ValueError(f"--hosts must be 1..250, got {count}")
    ips = [f"127.0.0.{i}" for i in range(2, 2 + count)]
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
    count: int, *, address: str, task_queue: str, log_dir: Path, log_level: str = "WARNING"
) -> tuple[list[subprocess.Popen[bytes]], list[IO[bytes]]]:
    """``count`` worker processes (``python -m worker``) with their output in log_dir."""
    env = dict(
        os.environ,
        TEMPORAL_ADDRESS=address,
        SHARDCRAWL_TASK_QUEUE=task_queue,
        SHARDCRAWL_LOG_LEVEL=log_level,
    )
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []
    for index in range(count):
        log = open(log_dir / f"worker-{index}.log", "ab")  # noqa: SIM115 - closed by caller
        logs.append(log)
        procs.append(
            subprocess.Popen(
                worker_command(), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        )
    return procs, logs


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
