"""What /proc says about the benchmark's processes and the machine: CPU seconds, resident memory."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "RssSampler",
    "cpu_seconds",
    "descendants",
    "machine_busy_seconds",
    "mb",
    "status_kb",
    "tree_cpu_seconds",
]

TICKS = os.sysconf("SC_CLK_TCK")


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


def mb(kb: int | None) -> float | None:
    return round(kb / 1024, 1) if kb is not None else None


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
