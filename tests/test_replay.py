"""Workflow code stays deterministic: recorded histories replay without nondeterminism errors.

The committed histories (tests/replay/histories, made by tests/replay/record_histories.py)
catch changes incompatible with crawls already running; a fresh crawl's histories catch
nondeterminism in the code as it is now.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from shardcrawl.temporal.wire import data_converter
from shardcrawl.temporal.worker import WORKFLOWS, workflow_runner
from shardcrawl.testing.history_audit import audit_crawl
from tests.helpers import start_crawl

HISTORIES = sorted((Path(__file__).parent / "replay" / "histories").glob("*.json"))


def replayer() -> Replayer:
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter,
        workflow_runner=workflow_runner(),
    )


def test_recorded_histories_are_present():
    names = {path.stem for path in HISTORIES}
    assert {"crawl-replay.0", "crawl-replay__shard-0.0", "crawl-replay__shard-1.0"} <= names
    assert "crawl-replay__proxies.0" in names, "the proxy broker (a route goes through a pool)"
    # Runs that began from a checkpoint (continue-as-new), of the crawl and of a shard.
    assert "crawl-replay.1" in names
    assert any(name.startswith("crawl-replay__shard-") and name.endswith(".1") for name in names)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path):
    workflow_id = path.stem.split(".")[0].replace("__", "/")
    history = WorkflowHistory.from_json(workflow_id, path.read_text())
    result = await replayer().replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_fresh_crawl_histories_replay(client, workers, task_queue, site_factory, tmp_path):
    site = site_factory(ips=("127.0.0.2", "127.0.0.3"), pages_per_host=30)
    workers.start(1)
    spec = {
        "seeds": [site.seed_url],
        "allowed_domains": ["127.0.0.2", "127.0.0.3"],
        "max_depth": 3,
        "shards": 3,
        "batch_size": 3,
        "output": str(tmp_path / "out"),
        "allow_private_networks": True,
        "history_events_per_run": 100,
    }
    handle = await start_crawl(client, spec, task_queue)
    await asyncio.wait_for(handle.result(), timeout=120)
    runs = await audit_crawl(client, handle.id)
    assert len({r.workflow_id for r in runs}) == 4
    assert len(runs) > 4, "no run continued as new: the checkpoint path was not replayed"
    histories = [
        await client.get_workflow_handle(r.workflow_id, run_id=r.run_id).fetch_history()
        for r in runs
    ]
    assert all(len(h.events) > 5 for h in histories)
    for history in histories:
        result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, (history.workflow_id, result.replay_failure)
