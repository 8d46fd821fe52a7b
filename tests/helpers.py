"""Small helpers the tests share: where the repository is, start a crawl, read its output."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rich.console import Console
from temporalio.client import Client, WorkflowHandle

from shardcrawl.core.layout import crawl_folder
from shardcrawl.models import CrawlReport
from shardcrawl.testing.history_audit import list_runs

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def start_ready(module: str, args: list[str], *, what: str) -> subprocess.Popen[str]:
    """A test server module in its own process, once it has printed ``ready``; if it does
    not, it is stopped and the test fails saying which server did not start."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.terminate()
        process.wait(timeout=10)
        raise RuntimeError(f"{what} did not start")
    return process


async def start_crawl(
    client: Client, spec: dict[str, Any], task_queue: str, *, crawl_id: str | None = None
) -> WorkflowHandle[Any, CrawlReport]:
    return await client.start_workflow(
        "CrawlWorkflow",
        spec,
        id=crawl_id or f"crawl-test-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
        result_type=CrawlReport,
    )


def render(renderable: object) -> str:
    """What the CLI would print for a rich renderable, as text."""
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(renderable)
    return buffer.getvalue()


async def run_histories(client: Client, crawl_id: str) -> AsyncIterator[list[Any]]:
    """Every run of the crawl and its shards, each as its history's events. Event ids count
    from 1 in every run, so one run's ids name only its own events."""
    for run in await list_runs(client, crawl_id):
        handle = client.get_workflow_handle(run.id, run_id=run.run_id)
        yield [event async for event in handle.fetch_history_events()]


async def crawl_events(client: Client, crawl_id: str, event_type: int) -> AsyncIterator[Any]:
    """The history events of one type of every run of the crawl and its shards."""
    async for events in run_histories(client, crawl_id):
        for event in events:
            if event.event_type == event_type:
                yield event


def read_records(out_dir: Path, crawl_id: str) -> list[dict[str, Any]]:
    """Every record of the crawl: one per URL requested or given up, failures included."""
    records = []
    for path in sorted((out_dir / crawl_folder(crawl_id) / "items").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records


def read_items(out_dir: Path, crawl_id: str) -> list[dict[str, Any]]:
    """The records of pages that answered (a status), what most tests compare with the site."""
    return [r for r in read_records(out_dir, crawl_id) if r["status"] is not None]


def read_report(out_dir: Path, crawl_id: str) -> dict[str, Any]:
    return json.loads(
        (out_dir / crawl_folder(crawl_id) / "report.json").read_text(encoding="utf-8")
    )


async def shardcrawl(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, in a subprocess."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "shardcrawl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
