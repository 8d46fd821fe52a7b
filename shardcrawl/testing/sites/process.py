"""Run the test-site server as a subprocess and read back its access log.

A subprocess keeps the server off the test's event loop/reactor, so its timing
data (and speed) is independent of the crawler under test.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from shardcrawl.testing.sites.graph import SiteConfig
from shardcrawl.testing.sites.server import bind_address

__all__ = ["SiteProcess", "max_overlap"]

# Longer host lists go to the server in a file: Linux caps one argument at 128 KiB.
_HOSTS_ARG_MAX = 32 * 1024
_ROOT = Path(__file__).resolve().parents[2]


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """Max number of simultaneously open [start, end] intervals (sweep line;
    an interval ending exactly when another starts does not overlap it)."""
    events = sorted(ev for s, e in intervals for ev in ((s, 1), (e, -1)))
    best = cur = 0
    for _, delta in events:  # (t, -1) sorts before (t, 1): ends first
        cur += delta
        best = max(best, cur)
    return best


class SiteProcess:
    """Context manager owning one ``shardcrawl.testing.sites.server`` subprocess."""

    def __init__(self, config: SiteConfig, log_path: Path, *, ready_timeout: float = 15.0) -> None:
        self.config = config
        self.log_path = Path(log_path)
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._stderr_final = ""
        self._hosts_file: Path | None = None

    @property
    def seed_url(self) -> str:
        return f"http://{self.config.hosts[0]}/"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        c = self.config
        hosts = ["--hosts", ",".join(c.hosts)]
        if self._hosts_file is not None:
            hosts = ["--hosts-file", str(self._hosts_file)]
        cmd = [
            sys.executable,
            "-m",
            "shardcrawl.testing.sites.server",
            *hosts,
            "--pages-per-host",
            str(c.pages_per_host),
            "--links-per-page",
            str(c.links_per_page),
            "--cross-host-ratio",
            repr(c.cross_host_ratio),
            "--seed",
            str(c.seed),
            "--delay-ms",
            str(c.delay_ms),
            "--log",
            str(self.log_path),
            "--parent-pid",
            str(os.getpid()),
        ]
        return cmd + ["--no-variants"] * (not c.variants) + ["--no-extras"] * (not c.extras)

    def start(self) -> SiteProcess:
        """Spawn the server and wait for READY; raise with its stderr on failure."""
        for host in self.config.hosts:
            bind_address(host)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        if len(",".join(self.config.hosts)) > _HOSTS_ARG_MAX:
            fd, name = tempfile.mkstemp(prefix="site-hosts-", suffix=".txt")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("\n".join(self.config.hosts) + "\n")
            self._hosts_file = Path(name)  # removed in stop()
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=self._stderr, env=env, cwd=str(_ROOT)
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.05)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 64)
                if not chunk:
                    break
                line += chunk
        if line.strip() != b"READY":
            self.stop()
            raise RuntimeError(
                f"site server did not become READY (got {line!r}): {self.stderr_text()}"
            )
        return self

    def stderr_text(self) -> str:
        """What the server wrote to stderr (kept after stop())."""
        if self._stderr is None:
            return self._stderr_final
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM our server PID and wait (SIGKILL if it hangs)."""
        proc, self.proc = self.proc, None
        if self._hosts_file is not None:
            self._hosts_file.unlink(missing_ok=True)
            self._hosts_file = None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr_final = self.stderr_text()
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SiteProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def requests(self) -> list[dict[str, Any]]:
        """Access-log entries written so far (flushed every 0.1 s)."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
        return out

    def max_concurrency_by_host(self) -> dict[str, int]:
        """Host -> max number of requests being served at the same time."""
        by_host: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for r in self.requests():
            by_host[r["host"]].append((r["start"], r["end"]))
        return {host: max_overlap(iv) for host, iv in by_host.items()}
