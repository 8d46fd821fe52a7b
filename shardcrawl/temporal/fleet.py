"""A crawl fleet on this machine: the embedded Temporal dev server (unless one is configured)
and N worker processes, all started and stopped by PID. ``shardcrawl run`` and the demo use it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from shardcrawl.temporal.config import Config
from shardcrawl.temporal.devserver import DevServer

__all__ = ["LocalFleet", "stop_processes", "worker_command"]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "shardcrawl.temporal.worker"]


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


class LocalFleet:
    """Owns the processes it starts; ``stop`` ends exactly those."""

    def __init__(
        self, config: Config, *, workers: int, embedded: bool, worker_log_dir: Path | None = None
    ) -> None:
        """``worker_log_dir``: where the workers' logs go, to outlive the fleet (default: a
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
            log = open(self.worker_log_dir / f"worker-{index}.log", "ab")  # noqa: SIM115
            if self.config.metrics_address:
                # One machine, so one port each: HOST:PORT, HOST:PORT+1, ...
                host, _, port = self.config.metrics_address.rpartition(":")
                env["SHARDCRAWL_METRICS_ADDRESS"] = f"{host}:{int(port) + index}"
            self.processes.append(
                subprocess.Popen(worker_command(), env=env, stdout=log, stderr=subprocess.STDOUT)
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
