"""The crawl's processes on this machine: the embedded Temporal dev server (unless one is
configured) and N worker processes, all started and stopped by PID. ``shardcrawl run`` and the
demo use it. (Not a fleet: a fleet is a group of workers by region.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from shardcrawl.temporal.config import Config
from shardcrawl.temporal.devserver import DevServer

__all__ = ["LocalProcesses", "start_worker", "stop_processes", "worker_command"]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "shardcrawl.temporal.worker"]


def start_worker(
    log_file: Path, *, env: Mapping[str, str], args: Sequence[str] = (), cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """One worker process (``worker_command()`` and ``args``, such as ``--fetch-queue eu``),
    configured by ``env`` (its Temporal address and task queue among them), its output appended
    to ``log_file``. Stop it by its PID: ``stop_processes``."""
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            [*worker_command(), *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )


def stop_processes(processes: list[subprocess.Popen[bytes]], *, grace_seconds: float = 30) -> None:
    """SIGTERM each process we started (by PID) so workers can finish their batches, then wait;
    SIGKILL whatever outlives the grace period."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class LocalProcesses:
    """Owns the processes it starts; ``stop`` ends exactly those."""

    def __init__(
        self, config: Config, *, workers: int, embedded: bool, worker_log_dir: Path | None = None
    ) -> None:
        """``worker_log_dir``: where the workers' logs go, to outlive the processes (default: a
        temporary folder, removed with the embedded server's state at ``stop``)."""
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self.embedded = embedded
        self.server: DevServer | None = None
        self.processes: list[subprocess.Popen[bytes]] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="shardcrawl-")
        self.log_dir = Path(self._tmp.name)
        self.worker_log_dir = worker_log_dir or self.log_dir
        # A private task queue, so this run's workers take only this run's crawl.
        self.config = config.model_copy(
            update={"task_queue": f"{config.task_queue}-{uuid.uuid4().hex[:8]}"}
        )

    def start(self) -> Config:
        if self.embedded:
            self.server = DevServer(
                db_file=self.log_dir / "temporal.db", log_file=self.log_dir / "temporal.log"
            ).start()
            self.config = self.config.model_copy(update={"temporal_address": self.server.address})
        env = dict(os.environ)
        env.update(
            {
                "TEMPORAL_ADDRESS": self.config.temporal_address,
                "TEMPORAL_NAMESPACE": self.config.temporal_namespace,
                "SHARDCRAWL_TASK_QUEUE": self.config.task_queue,
                # The crawl's own workers serve its main queue, whatever the shell exports.
                "SHARDCRAWL_FETCH_QUEUES": "default",
            }
        )
        self.worker_log_dir.mkdir(parents=True, exist_ok=True)
        for index in range(self.workers):
            if self.config.metrics_address:
                # One machine, so one port each: HOST:PORT, HOST:PORT+1, ...
                host, _, port = self.config.metrics_address.rpartition(":")
                env["SHARDCRAWL_METRICS_ADDRESS"] = f"{host}:{int(port) + index}"
            self.processes.append(
                start_worker(self.worker_log_dir / f"worker-{index}.log", env=env)
            )
        return self.config

    def worker_logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:]
            for p in sorted(self.worker_log_dir.glob("worker-*.log"))
        )

    def stop(self) -> None:
        stop_processes(self.processes)
        if self.server is not None:
            self.server.stop()
        self._tmp.cleanup()
