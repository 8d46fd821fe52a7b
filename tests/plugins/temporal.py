"""A real Temporal dev server for the whole session, and worker subprocesses per test.

Each test gets its own task queue, so its workers take only its crawls; workers are real
processes (``python -m worker``) so that tests exercise what users run.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client

from shardcrawl.temporal.devserver import DevServer
from shardcrawl.temporal.local_processes import start_worker, stop_processes
from shardcrawl.temporal.wire import data_converter


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    state = tmp_path_factory.mktemp("temporal")
    server = DevServer(db_file=state / "temporal.db", log_file=state / "server.log", headless=True)
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(temporal_server: DevServer) -> AsyncIterator[Client]:
    yield await Client.connect(temporal_server.address, data_converter=data_converter)


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


class Workers:
    """Worker processes on one task queue; stopped by PID at the end of the test."""

    def __init__(self, address: str, task_queue: str, log_dir: Path) -> None:
        self.address = address
        self.task_queue = task_queue
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.extra_env: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDCRAWL_")}
        env.update(
            TEMPORAL_ADDRESS=self.address,
            SHARDCRAWL_TASK_QUEUE=self.task_queue,
            SHARDCRAWL_LOG_LEVEL="WARNING",
            NO_PROXY="*",
        )
        env.update(self.extra_env)
        return env

    def start(self, count: int = 1, *, args: Sequence[str] = ()) -> list[subprocess.Popen[bytes]]:
        """``args``: the workers' flags (``--fetch-queue eu``)."""
        started = []
        for _ in range(count):
            log_file = self.log_dir / f"worker-{len(self.processes)}.log"
            process = start_worker(log_file, env=self.env(), args=args)
            self.processes.append(process)
            started.append(process)
        return started

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def stop(self) -> None:
        stop_processes(self.processes)


@pytest.fixture
def workers(temporal_server: DevServer, task_queue: str, tmp_path: Path) -> Iterator[Workers]:
    log_dir = tmp_path / "worker-logs"
    log_dir.mkdir()
    fleet = Workers(temporal_server.address, task_queue, log_dir)
    yield fleet
    fleet.stop()


@pytest.fixture
def fleet_factory(temporal_server: DevServer, tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    """More worker fleets in one test, each on a task queue of its own, for crawls run side by
    side; ``make(count, **env)`` starts one. All are stopped at the end of the test."""
    fleets: list[Workers] = []

    def make(count: int, **env: str) -> Workers:
        log_dir = tmp_path / f"fleet-{len(fleets)}-logs"
        log_dir.mkdir()
        fleet = Workers(temporal_server.address, f"test-{uuid.uuid4().hex[:12]}", log_dir)
        fleet.extra_env.update(env)
        fleets.append(fleet)
        fleet.start(count)
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop()


@pytest.fixture
def cli_env(temporal_server: DevServer, task_queue: str) -> Callable[..., dict[str, str]]:
    """Environment for running the ``shardcrawl`` CLI against the test server."""

    def make(**extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDCRAWL_")}
        env.update(
            TEMPORAL_ADDRESS=temporal_server.address,
            SHARDCRAWL_TASK_QUEUE=task_queue,
            NO_PROXY="*",
        )
        env.update(extra)
        return env

    return make
