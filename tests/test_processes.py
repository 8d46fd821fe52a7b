"""The server and worker commands, run as processes the way users run them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError

from shardcrawl.core.ports import free_ports
from shardcrawl.models import CrawlReport
from shardcrawl.temporal.local_processes import stop_processes
from tests.helpers import crawl_events, start_crawl

ROOT = Path(__file__).resolve().parents[1]


def wait_listening(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


def start_server(port: int, ui_port: int, db: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shardcrawl",
            "server",
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--db",
            str(db),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port)
    return server


async def test_server_command_runs_a_persistent_server_with_ui(tmp_path):
    port, ui_port = free_ports(2)
    db = tmp_path / "state" / "temporal.db"
    server = start_server(port, ui_port, db)
    try:
        wait_listening(ui_port)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{ui_port}/", timeout=10) as response:
            assert response.status == 200
        client = await Client.connect(f"127.0.0.1:{port}")
        await client.start_workflow(
            "CrawlWorkflow",
            {"seeds": ["http://127.0.0.2/"]},
            id="persisted",
            task_queue="nobody-polls",
        )
    finally:
        stop_processes([server])
    assert db.exists() and db.stat().st_size > 0

    again = start_server(port, ui_port, db)
    try:
        client = await Client.connect(f"127.0.0.1:{port}")
        description = await client.get_workflow_handle("persisted").describe()
        assert description.workflow_type == "CrawlWorkflow", "state did not survive a restart"
    finally:
        stop_processes([again])


@pytest.mark.parametrize("command", [["worker.py"], ["-m", "shardcrawl", "worker"]])
def test_worker_refuses_a_misspelt_setting(command):
    env = dict(os.environ, SHARDCRAWL_TASK_QUEU="oops")
    result = subprocess.run(
        [sys.executable, *command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "SHARDCRAWL_TASK_QUEU" in result.stderr and "Traceback" not in result.stderr


async def test_shardcrawl_worker_command_serves_crawls(
    client, temporal_server, task_queue, site_factory, tmp_path
):
    site = site_factory(ips=("127.0.0.2",), pages_per_host=8, extras=False)
    env = dict(
        os.environ, TEMPORAL_ADDRESS=temporal_server.address, SHARDCRAWL_TASK_QUEUE=task_queue
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "shardcrawl", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        report = await client.execute_workflow(
            "CrawlWorkflow",
            {"seeds": [site.seed_url], "output": str(tmp_path), "allow_private_networks": True},
            id=f"served-{task_queue}",
            task_queue=task_queue,
            result_type=CrawlReport,
            execution_timeout=timedelta(seconds=120),
        )
        assert report.pages_fetched >= 8
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


async def test_worker_roles_split_the_main_queue(
    client, workers, task_queue, site_factory, tmp_path
):
    """A worker of workflows alone decides and fetches nothing; a worker of activities alone
    fetches: together they crawl the site, each doing only its half (by the server's history,
    which names the worker of every task, and the site's log)."""
    site = site_factory(ips=("127.0.0.2",), pages_per_host=8, extras=False)
    (deciding,) = workers.start(1, args=["--role", "workflows"])
    spec = {"seeds": [site.seed_url], "output": str(tmp_path), "allow_private_networks": True}
    handle = await start_crawl(client, spec, task_queue)
    deadline = time.monotonic() + 60
    while not (await handle.describe()).raw_description.pending_activities:
        assert time.monotonic() < deadline, "the crawl never scheduled its first activity"
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    assert not site.requests(), "a worker of workflows alone fetched"
    (fetching,) = workers.start(1, args=["--role", "activities"])
    report = await asyncio.wait_for(handle.result(), timeout=120)
    assert report.pages_fetched >= 8
    assert {r["path"] for r in site.requests()} >= {"/", "/p/1"}
    decided = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    identities = [
        e.workflow_task_completed_event_attributes.identity
        async for e in crawl_events(client, handle.id, decided)
    ]
    assert identities and {i.split("@")[0] for i in identities} == {str(deciding.pid)}
    ran = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    identities = [
        e.activity_task_started_event_attributes.identity
        async for e in crawl_events(client, handle.id, ran)
    ]
    assert identities and {i.split("@")[0] for i in identities} == {str(fetching.pid)}


@pytest.mark.parametrize("command", [["worker.py"], ["-m", "shardcrawl", "worker"]])
def test_a_worker_of_workflows_alone_serves_no_fetch_queue(command):
    env = dict(os.environ, SHARDCRAWL_WORKER_ROLE="workflows", SHARDCRAWL_FETCH_QUEUES="eu")
    result = subprocess.run(
        [sys.executable, *command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "worker_role 'workflows'" in result.stderr and "'eu'" in result.stderr


async def test_unknown_spider_from_temporal_fails_the_crawl_at_once(client, workers, task_queue):
    workers.start(1)
    handle = await client.start_workflow(
        "CrawlWorkflow",
        {"seeds": ["http://127.0.0.2/"], "spider": "nope", "allow_private_networks": True},
        id=f"unknown-spider-{task_queue}",
        task_queue=task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=60)
    cause = failure.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "UnknownSpider" and "nope" in cause.cause.message
