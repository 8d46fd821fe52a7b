"""Node loss: workers killed mid-batch (ten times in one crawl), stopped gracefully, or all
gone for a while, and the Temporal server killed and restarted (once while a shard is
continuing as new). Every time the crawl completes with every reachable page in the output
exactly once. Processes are real and killed by PID at random moments."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path
from subprocess import Popen

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from shardcrawl.core import urls
from shardcrawl.core.ports import free_ports
from shardcrawl.models import BatchRequest, shard_workflow_id
from shardcrawl.temporal.devserver import DevServer
from shardcrawl.temporal.wire import data_converter
from shardcrawl.testing.sites.graph import reachable_pages
from shardcrawl.testing.sites.urls import is_optional_url
from tests.helpers import read_items, run_histories, start_crawl
from tests.plugins.temporal import Workers

MAX_DEPTH = 6
KILLS = 3
WORKER_KILLS = 10
# What a shard runs while it continues as new: its state to the store, then back.
CHECKPOINT_ACTIVITIES = frozenset({"save_segment", "load_segment", "delete_segments"})


def crawl_spec(site, out: Path) -> dict:
    return {
        "seeds": [site.seed_url],
        "allowed_domains": ["127.0.0.2", "127.0.0.3", "localhost"],
        "max_depth": MAX_DEPTH,
        "concurrency_per_host": 2,
        "batch_size": 6,
        "shards": 3,
        "output": str(out),
        "allow_private_networks": True,
        # Runs continue as new often, so losses also hit checkpoints and fresh runs.
        "history_events_per_run": 150,
    }


async def rerun_urls(client: Client, crawl_id: str) -> set[str]:
    """URLs of batches that ran more than once (an attempt lost with its worker or its
    server, then run again): the only pages the site may see twice. Event ids count from 1
    in every run, so a started event is matched with its scheduled event in its own run."""
    rerun: set[str] = set()
    async for events in run_histories(client, crawl_id):
        inputs: dict[int, list[str]] = {}
        for event in events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == "crawl_batch":
                    (batch,) = await client.data_converter.decode(
                        attributes.input.payloads, [BatchRequest]
                    )
                    inputs[event.event_id] = [t.url for t in batch.urls]
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                if started.attempt > 1:
                    rerun.update(inputs.get(started.scheduled_event_id, []))
    return rerun


async def assert_exactly_once(client: Client, site, out: Path, crawl_id: str) -> None:
    """Every reachable page in the output once, and, from the site's log, requested: twice
    only if its batch ran again."""
    recorded = Counter(item["url"] for item in read_items(out, crawl_id))
    twice = [u for u, n in recorded.items() if n > 1]
    assert not twice, f"recorded twice: {twice[:5]}"
    expected = set(reachable_pages(site.config, [site.seed_url], max_depth=MAX_DEPTH))
    assert not expected - set(recorded), f"lost: {sorted(expected - set(recorded))[:5]}"
    assert all(u in expected or is_optional_url(u) for u in recorded)
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    assert not leftovers, f"half-written objects left: {leftovers}"
    await asyncio.sleep(0.3)  # the site flushes its log every 0.1 s
    served = Counter(
        urls.canonicalize(f"http://{r['host']}{r['path']}")
        for r in site.requests()
        if r["path"] != "/robots.txt"
    )
    assert not expected - set(served), "pages the site never served are in the output"
    again = {u for u, n in served.items() if n > 1} - await rerun_urls(client, crawl_id)
    assert not again, f"served twice, though their batch ran once: {sorted(again)[:5]}"


async def pid_running_a_batch(client: Client, crawl_id: str, shards: int, live: set[int]) -> int:
    """The PID of a live worker that has a batch started right now (identity is pid@host).
    A dead worker's batch shows as started until its heartbeat times out: those are skipped."""
    while True:
        for i in range(shards):
            try:
                description = await client.get_workflow_handle(
                    shard_workflow_id(crawl_id, i)
                ).describe()
            except RPCError:
                continue  # not started yet
            for pending in description.raw_description.pending_activities:
                started = pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                pid = int(pending.last_worker_identity.split("@", 1)[0] or 0)
                if started and pending.activity_type.name == "crawl_batch" and pid in live:
                    return pid
        await asyncio.sleep(0.05)


async def shard_continuing_as_new(client: Client, crawl_id: str, shards: int) -> None:
    """Returns while some shard of the crawl is saving or loading its checkpoint."""
    while True:
        for i in range(shards):
            try:
                description = await client.get_workflow_handle(
                    shard_workflow_id(crawl_id, i)
                ).describe()
            except RPCError:
                continue
            pending = description.raw_description.pending_activities
            if any(p.activity_type.name in CHECKPOINT_ACTIVITIES for p in pending):
                return
        await asyncio.sleep(0.02)


async def worker_in_a_batch(client: Client, workers: Workers, crawl_id: str) -> Popen[bytes]:
    """After a random pause, a live worker process that is running a batch right now."""
    await asyncio.sleep(random.uniform(0.2, 1.5))
    live = {p.pid for p in workers.processes if p.poll() is None}
    victim = await pid_running_a_batch(client, crawl_id, 3, live)
    return next(p for p in workers.processes if p.pid == victim)


async def pids_running_batches(client: Client, crawl_id: str, shards: int) -> set[int]:
    """PIDs of the workers that have a batch of the crawl started right now (one look)."""
    pids = set()
    for i in range(shards):
        try:
            description = await client.get_workflow_handle(
                shard_workflow_id(crawl_id, i)
            ).describe()
        except RPCError:
            continue
        for pending in description.raw_description.pending_activities:
            if (
                pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                and pending.activity_type.name == "crawl_batch"
            ):
                pids.add(int(pending.last_worker_identity.split("@", 1)[0] or 0))
    return pids


async def test_workers_killed_mid_batch_lose_and_duplicate_nothing(
    client, workers, task_queue, site_factory, tmp_path
):
    """Ten SIGKILLs at random moments of one crawl, each of a worker running a batch if one
    is within 5 s (else of any worker), a new worker started after each. A killed batch
    holds its host until its heartbeat times out, so not every kill can find one."""
    site = site_factory(pages_per_host=60, delay_ms=60)
    out = tmp_path / "out"
    workers.start(3)
    handle = await start_crawl(client, crawl_spec(site, out), task_queue)
    rng = random.Random()
    batches_hit = 0
    for _ in range(WORKER_KILLS):
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        live = [p for p in workers.processes if p.poll() is None]
        busy: set[int] = set()
        for _ in range(100):  # up to ~5 s for a live worker to be running a batch
            busy = await pids_running_batches(client, handle.id, 3) & {p.pid for p in live}
            if busy:
                break
            await asyncio.sleep(0.05)
        victim = rng.choice([p for p in live if p.pid in busy] or live)
        batches_hit += victim.pid in busy
        victim.kill()  # SIGKILL, by PID
        await asyncio.to_thread(victim.wait, 30)
        workers.start(1)
    report = await asyncio.wait_for(handle.result(), timeout=240)
    assert batches_hit >= 3, f"only {batches_hit} kills landed mid-batch"
    assert report.batch_retries >= batches_hit, "killed batches were not run again"
    await assert_exactly_once(client, site, out, handle.id)


async def test_graceful_stop_and_all_workers_gone_for_a_while(
    client, workers, task_queue, site_factory, tmp_path
):
    site = site_factory(pages_per_host=30, delay_ms=60)
    out = tmp_path / "out"
    workers.start(2)
    handle = await start_crawl(client, crawl_spec(site, out), task_queue)
    for _ in range(KILLS):
        process = await worker_in_a_batch(client, workers, handle.id)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
        workers.start(1)
    await asyncio.sleep(random.uniform(0.2, 1.0))
    for process in workers.processes:
        process.kill()
    await asyncio.sleep(3)  # nobody works on the crawl
    workers.start(2)
    await asyncio.wait_for(handle.result(), timeout=240)
    await assert_exactly_once(client, site, out, handle.id)


async def test_temporal_server_killed_and_restarted(site_factory, tmp_path):
    site = site_factory(pages_per_host=100, delay_ms=60)
    out = tmp_path / "out"
    port, ui_port = free_ports(2)
    server = DevServer(port=port, ui_port=ui_port, db_file=tmp_path / "temporal.db", headless=True)
    fleet = Workers(server.address, "restarts", tmp_path)
    try:
        fleet.start(2)  # before the server: workers wait for it to answer
        await asyncio.sleep(1)
        server.start()
        client = await Client.connect(server.address, data_converter=data_converter)
        handle = await start_crawl(client, crawl_spec(site, out), "restarts")
        rng = random.Random()
        for kill in range(KILLS):
            if kill == 0:
                await asyncio.wait_for(shard_continuing_as_new(client, handle.id, 3), 120)
            else:
                await asyncio.sleep(rng.uniform(0.5, 2.0))
            status = (await handle.describe()).status
            assert status == WorkflowExecutionStatus.RUNNING, "the crawl ended before the kill"
            server.stop(kill=True)
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            server.start()
        await asyncio.wait_for(handle.result(), timeout=240)
        await assert_exactly_once(client, site, out, handle.id)
    finally:
        fleet.stop()
        server.stop()
