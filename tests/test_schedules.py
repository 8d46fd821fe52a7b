"""Recurring crawls on Temporal Schedules: from the CLI, the Python client and the real
``temporal`` binary, against a real server, workers and a site on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from datetime import timedelta

import pytest
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
)

from shardcrawl.core.errors import ScheduleError
from shardcrawl.core.layout import crawl_folder
from shardcrawl.models import CrawlSpec
from shardcrawl.temporal.client import CrawlClient
from shardcrawl.temporal.devserver import temporal_binary
from shardcrawl.temporal.schedules import calendar_cron, every_text, parse_every
from shardcrawl.temporal.wire import decode_payload
from shardcrawl.testing.sites.graph import reachable_pages
from tests.helpers import read_items, read_report, shardcrawl


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("6h", 21600), ("1d", 86400), ("1h30m", 5400)]
)
def test_intervals_read_as_durations(text, seconds):
    assert parse_every(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("seconds", "text"), [(90, "1m30s"), (86400, "1d"), (5400, "1h30m"), (21600, "6h")]
)
def test_intervals_show_as_every_takes_them(seconds, text):
    assert every_text(timedelta(seconds=seconds)) == text
    assert parse_every(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "cron", ["0 3 * * *", "*/15 9-17 * * 1-5", "30 2 1,15 * 0", "5 4 * 6 *", "0 0 1 */3 *"]
)
async def test_a_cron_comes_back_from_the_calendars_the_server_keeps(client, cron):
    """The server turns a cron into calendars; describe gives the cron back."""
    name = f"cron-{uuid.uuid4().hex[:6]}"
    schedule = Schedule(
        action=ScheduleActionStartWorkflow("CrawlWorkflow", id=name, task_queue="unused"),
        spec=ScheduleSpec(cron_expressions=[cron]),
        state=ScheduleState(paused=True),
    )
    handle = await client.create_schedule(name, schedule)
    try:
        (calendar,) = (await handle.describe()).schedule.spec.calendars
        assert calendar_cron(calendar) == cron
    finally:
        await handle.delete()


def test_scheduled_run_folders_have_no_colons():
    assert crawl_folder("nightly-2026-12-01T03:00:00Z") == "nightly-20261201-030000"
    assert crawl_folder("crawl-20261201-030000-ab12cd") == "crawl-20261201-030000-ab12cd"
    assert crawl_folder("odd:id") == "odd-id"


@pytest.mark.parametrize("text", ["", "5", "5q", "1h 30", "0s", "-5m"])
def test_bad_intervals_say_what_to_write(text):
    with pytest.raises(ScheduleError, match="--every"):
        parse_every(text)


async def _completed_runs(client, name: str, count: int, timeout: float = 120) -> list[str]:
    """The ids of the schedule's first ``count`` runs, once each has completed."""
    schedules = CrawlClient(client, task_queue="unused").schedules
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        summary = await schedules.describe(name)
        done = [r.crawl_id for r in summary.recent_runs if r.status == "completed"]
        if len(done) >= count:
            return done
        assert asyncio.get_running_loop().time() < deadline, summary
        await asyncio.sleep(0.5)


async def test_schedule_from_the_cli_runs_each_crawl_under_its_own_id(
    client, cli_env, workers, site_factory, tmp_path
):
    site = site_factory(ips=("127.0.0.2",), pages_per_host=6, delay_ms=5)
    workers.start(1)
    out = tmp_path / "out"
    name = f"nightly-{uuid.uuid4().hex[:6]}"
    env = cli_env(COLUMNS="240")
    created = await shardcrawl(
        "schedule", "create", name, "--every", "1d", site.seed_url,
        "--allow-private-networks", "--out", str(out), "--max-depth", "3", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    described = await shardcrawl("schedule", "describe", name, env=env)
    assert "every 1d" in described.stdout and "skip" in described.stdout
    assert site.seed_url in described.stdout
    each_run = rf"output +{re.escape(str(out))} \(each run in {name}-YYYYMMDD"
    assert re.search(each_run, described.stdout), described.stdout
    for _ in range(2):
        trigger = await shardcrawl("schedule", "trigger", name, env=env)
        assert trigger.returncode == 0, trigger.stderr
        await _completed_runs(client, name, 1)
    runs = await _completed_runs(client, name, 2)
    assert len(set(runs)) == 2 and all(r.startswith(f"{name}-") for r in runs)
    expected = reachable_pages(site.config, [site.seed_url], max_depth=3)
    for crawl_id in runs:
        assert {i["url"] for i in read_items(out, crawl_id)} >= set(expected)
    # By default each run recrawls the one before it incrementally.
    first, second = (read_report(out, crawl_id) for crawl_id in runs)
    assert first["previous_crawl"] is None and second["previous_crawl"] == runs[0]
    assert second["pages_unchanged"] > 0
    full = f"{name}-full"
    created = await shardcrawl(
        "schedule", "create", full, "--every", "1d", "--full", "--paused", site.seed_url,
        "--allow-private-networks", "--out", str(out), env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    for schedule, incremental in ((name, True), (full, False)):
        action = (await client.get_schedule_handle(schedule).describe()).schedule.action
        spec = client.data_converter.payload_converter.from_payload(
            decode_payload(action.args[0]), dict
        )
        assert spec["incremental"] is incremental
    assert (await shardcrawl("schedule", "delete", full, env=env)).returncode == 0
    described = await shardcrawl("schedule", "describe", name, env=env)
    assert all(r in described.stdout for r in runs) and "completed" in described.stdout
    # The UI finds a schedule's crawls by Temporal's own attribute, and sees them completed.
    query = f"TemporalScheduledById = '{name}' AND ShardcrawlStatus = 'completed'"
    assert sorted([w.id async for w in client.list_workflows(query)]) == sorted(runs)

    paused = await shardcrawl("schedule", "pause", name, env=env)
    assert paused.returncode == 0
    listed = await shardcrawl("schedule", "list", env=env)
    assert name in listed.stdout and "paused" in listed.stdout
    # At 80 columns: whole names and values (columns left out, none cut), each on one line.
    narrow = await shardcrawl("schedule", "list", env=cli_env(COLUMNS="80"))
    row = next(line for line in narrow.stdout.splitlines() if line.startswith(name + " "))
    assert row.split()[1:4] == ["every", "1d", "paused"] and row.endswith(" completed"), row
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines()), narrow.stdout
    assert "…" not in narrow.stdout
    assert (await shardcrawl("schedule", "unpause", name, env=env)).returncode == 0
    assert not (await CrawlClient(client, task_queue="x").schedules.describe(name)).paused
    assert (await shardcrawl("schedule", "delete", name, env=env)).returncode == 0
    for command in ("describe", "trigger", "delete"):
        gone = await shardcrawl("schedule", command, name, env=env)
        assert gone.returncode == 2 and f"no schedule named {name!r}" in gone.stderr
        assert "Traceback" not in gone.stderr


async def test_schedule_from_python_skips_a_run_while_one_is_going(
    client, workers, task_queue, site_factory, tmp_path
):
    site = site_factory(ips=("127.0.0.3",), pages_per_host=30, delay_ms=100)
    workers.start(1)
    crawls = CrawlClient(client, task_queue=task_queue)
    name = f"hourly-{uuid.uuid4().hex[:6]}"
    spec = CrawlSpec(
        seeds=[site.seed_url],
        allow_private_networks=True,
        output=str(tmp_path / "out"),
        concurrency_per_host=1,
    )
    await crawls.schedules.create(name, spec, cron="0 * * * *")
    await _listed(crawls, name, True)
    await crawls.schedules.trigger(name)
    first = await _running_run(crawls, name)
    await crawls.schedules.trigger(name)  # skipped: the first is still going
    await asyncio.sleep(1.0)
    summary = await crawls.schedules.describe(name)
    assert [r.crawl_id for r in summary.recent_runs] == [first]
    assert summary.next_runs and summary.when == "cron 0 * * * *"
    await crawls.get(first).cancel()
    await crawls.schedules.delete(name)
    await _listed(crawls, name, False)


async def _listed(crawls: CrawlClient, name: str, listed: bool) -> None:
    """Listing schedules reads Temporal's visibility store, which catches up a moment after a
    create or delete (longer on a loaded machine)."""
    for _ in range(100):
        if (name in await crawls.schedules.names()) == listed:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"schedule {name} {'never' if listed else 'still'} listed")


async def _running_run(crawls: CrawlClient, name: str) -> str:
    for _ in range(100):
        summary = await crawls.schedules.describe(name)
        if summary.recent_runs:
            return summary.recent_runs[0].crawl_id
        await asyncio.sleep(0.1)
    raise AssertionError("the triggered run never started")


async def test_schedule_made_with_the_temporal_cli(
    client, cli_env, temporal_server, workers, task_queue, site_factory, tmp_path, tmp_path_factory
):
    site = site_factory(ips=("127.0.0.4",), pages_per_host=5, delay_ms=5)
    workers.start(1)
    out = tmp_path_factory.mktemp("out")  # short: describe shows it whole at 80 columns
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps({"seeds": [site.seed_url], "allow_private_networks": True, "output": str(out)})
    )
    name = f"cli-made-{uuid.uuid4().hex[:6]}"
    temporal = [temporal_binary(), "--address", temporal_server.address]
    subprocess.run(
        [*temporal, "schedule", "create", "--schedule-id", name, "--cron", "0 3 * * *",
         "--overlap-policy", "Skip", "--workflow-id", name, "--type", "CrawlWorkflow",
         "--task-queue", task_queue, "--input-file", str(spec)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        [*temporal, "schedule", "trigger", "--schedule-id", name],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (crawl_id,) = await _completed_runs(client, name, 1)
    status = (await client.get_workflow_handle(crawl_id).describe()).status
    assert status == WorkflowExecutionStatus.COMPLETED
    # The run keeps Temporal's id; its folder is the same id without colons.
    assert crawl_id.startswith(f"{name}-") and crawl_id.endswith("Z") and ":" in crawl_id
    stamp = crawl_id[len(name) + 1 :]
    folder = f"{name}-{stamp[:10].replace('-', '')}-{stamp[11:19].replace(':', '')}"
    assert crawl_folder(crawl_id) == folder and (out / folder).is_dir()
    assert read_report(out, crawl_id)["crawl_id"] == crawl_id
    env = {**cli_env(COLUMNS="80"), "SHARDCRAWL_TASK_QUEUE": task_queue}
    described = (await shardcrawl("schedule", "describe", name, env=env)).stdout
    fields = dict(re.findall(r"^(\w[\w ]*?) {2,}(.*?) *$", described, flags=re.M))
    assert fields["when"] == "cron 0 3 * * *", described
    assert fields["state"] == "active" and fields["seeds"] == site.seed_url, described
    assert fields["output"].startswith(str(out)), described
    assert f"{crawl_id}  completed" in described
    expected = reachable_pages(site.config, [site.seed_url], max_depth=5)
    assert {i["url"] for i in read_items(out, crawl_id)} >= set(expected)
    assert read_report(out, crawl_id)["pages_fetched"] == len(read_items(out, crawl_id))
    await CrawlClient(client, task_queue=task_queue).schedules.delete(name)
