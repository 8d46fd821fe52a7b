"""What one Temporal operation costs the Temporal server: CPU ms of the embedded dev server
per activity, signal, timer, heartbeat, query and describe, measured one kind at a time.

    .venv/bin/python bench/bench_server_ops.py [--count 200] [--kinds activity,signal,...]

Each kind runs ``--count`` times in one workflow (a worker in this process, unsandboxed: the
worker's own CPU is not what is measured), and the server's CPU over it (/proc) is divided by
the count. The costs price a crawl's history: docs/benchmarks.md, "Where the Temporal
server's CPU goes".
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _checkout  # noqa: E402, F401 - first, so that shardcrawl is this checkout's
from _proc import tree_cpu_seconds  # noqa: E402
from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import UnsandboxedWorkflowRunner, Worker  # noqa: E402

from shardcrawl.temporal.devserver import DevServer  # noqa: E402

KINDS = {
    "workflow": "a workflow started and completed",
    "activity": "an activity awaited alone (its own workflow task)",
    "activities_20": "an activity of 20 run side by side",
    "timer_cancelled": "an activity awaited with a 60 s timeout (its timer cancelled)",
    "timer_fired": "a 10 ms timer, fired",
    "client_signal": "a signal from a client",
    "workflow_signal": "a signal from a workflow to another, awaited",
    "heartbeat": "an activity heartbeat (throttling off)",
    "query": "a query",
    "describe": "a describe of the workflow",
}
OPTIONS = {"start_to_close_timeout": timedelta(seconds=60)}


@activity.defn
async def noop() -> None:
    return None


@activity.defn
async def beat(count: int) -> None:
    for i in range(count):
        activity.heartbeat(i)
        await asyncio.sleep(0.02)


@workflow.defn
class Ops:
    def __init__(self) -> None:
        self.signals = 0

    @workflow.signal
    def poke(self) -> None:
        self.signals += 1

    @workflow.query
    def count(self) -> int:
        return self.signals

    @workflow.run
    async def run(self, kind: str, count: int) -> None:
        if kind == "activity":
            for _ in range(count):
                await workflow.execute_activity(noop, **OPTIONS)  # type: ignore[arg-type]
        elif kind == "activities_20":
            for _ in range(count // 20):
                await asyncio.gather(
                    *(workflow.execute_activity(noop, **OPTIONS) for _ in range(20))  # type: ignore[arg-type]
                )
        elif kind == "timer_cancelled":
            for _ in range(count):
                task = workflow.start_activity(noop, **OPTIONS)  # type: ignore[arg-type]
                await workflow.wait_condition(task.done, timeout=timedelta(seconds=60))
        elif kind == "timer_fired":
            for _ in range(count):
                await workflow.sleep(0.01)
        elif kind == "workflow_signal":
            peer = workflow.get_external_workflow_handle(workflow.info().workflow_id + "-peer")
            for _ in range(count):
                await peer.signal("poke")
        elif kind == "heartbeat":
            heartbeat = timedelta(seconds=30)
            await workflow.execute_activity(beat, count, heartbeat_timeout=heartbeat, **OPTIONS)  # type: ignore[arg-type]
        elif kind in ("client_signal", "peer"):
            await workflow.wait_condition(lambda: self.signals >= count)
        elif kind in ("query", "describe"):
            await workflow.wait_condition(lambda: self.signals >= 1)


async def measure(client: Client, server_pid: int, kind: str, count: int, queue: str) -> float:
    """Server CPU ms per operation of ``kind``."""
    before = tree_cpu_seconds(server_pid)
    if kind == "workflow":
        for _ in range(count):
            await client.execute_workflow(
                Ops.run, args=["workflow", 0], id=f"w-{uuid.uuid4().hex}", task_queue=queue
            )
        return 1000 * (tree_cpu_seconds(server_pid) - before) / count
    workflow_id = f"{kind}-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        Ops.run, args=[kind, count], id=workflow_id, task_queue=queue
    )
    waits = [handle]
    if kind == "workflow_signal":
        waits.append(
            await client.start_workflow(
                Ops.run, args=["peer", count], id=workflow_id + "-peer", task_queue=queue
            )
        )
    for _ in range(count if kind in ("client_signal", "query", "describe") else 0):
        if kind == "client_signal":
            await handle.signal(Ops.poke)
        elif kind == "query":
            await handle.query(Ops.count)
        else:
            await handle.describe()
    if kind in ("query", "describe"):
        await handle.signal(Ops.poke)
    for waiting in waits:
        await waiting.result()
    return 1000 * (tree_cpu_seconds(server_pid) - before) / count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        DevServer(headless=True, db_file=Path(tmp) / "ops.db") as server,
    ):
        assert server.process is not None
        client = await Client.connect(server.address)
        queue = "ops"
        async with Worker(
            client,
            task_queue=queue,
            workflows=[Ops],
            activities=[noop, beat],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_heartbeat_throttle_interval=timedelta(milliseconds=10),
            default_heartbeat_throttle_interval=timedelta(milliseconds=10),
        ):
            await measure(client, server.process.pid, "activity", 20, queue)  # warm up
            for kind in args.kinds.split(","):
                start = time.monotonic()
                ms = await measure(client, server.process.pid, kind, args.count, queue)
                print(
                    f"{KINDS[kind]:<66} {ms:6.2f} server CPU ms  "
                    f"({time.monotonic() - start:.1f} s for {args.count})",
                    flush=True,
                )


if __name__ == "__main__":
    asyncio.run(main())
