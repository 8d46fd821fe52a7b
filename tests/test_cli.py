"""The ``shardcrawl`` command line, run as a user runs it: a subprocess against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from shardcrawl.core.ports import free_port
from shardcrawl.temporal.client import CrawlHandle
from shardcrawl.testing.sites.graph import reachable_pages
from tests.helpers import read_items, read_report, shardcrawl


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-pages", "-5"], "max_pages"),
        (["--spider", "nope"], "spider: unknown spider 'nope'"),
        (["--out", "ftp://x/y"], "output"),
        (["--delay", "-1"], "delay_seconds"),
    ],
)
async def test_bad_spec_is_refused_before_any_workflow_starts(client, cli_env, args, expected):
    crawl_id = f"never-started-{abs(hash(tuple(args)))}"
    result = await shardcrawl(
        "start", "http://example.com/", "--id", crawl_id, *args, env=cli_env()
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(RPCError):
        await client.get_workflow_handle(crawl_id).describe()


async def test_spec_file_errors_name_the_field_and_file(cli_env, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("seeds: [http://example.com/]\nmax_depht: 3\n")
    result = await shardcrawl("start", "--spec", str(spec), env=cli_env())
    assert result.returncode == 2
    assert "max_depht: unknown field" in result.stderr
    missing = await shardcrawl("start", "--spec", str(tmp_path / "nope.yaml"), env=cli_env())
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr


async def test_start_status_wait_and_report(cli_env, workers, site_factory, tmp_path):
    site = site_factory(ips=("127.0.0.2", "127.0.0.3"), pages_per_host=15, delay_ms=5)
    workers.start(1)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"seeds: ['{site.seed_url}']\n"
        "allowed_domains: [127.0.0.2, 127.0.0.3]\n"
        "allow_private_networks: true\n"
        "max_depth: 3\n"
    )
    out = tmp_path / "out"
    started = await shardcrawl("start", "--spec", str(spec), "--out", str(out), env=cli_env())
    assert started.returncode == 0, started.stderr
    crawl_id = started.stdout.strip().splitlines()[-1]

    status = await shardcrawl("status", crawl_id, "--json", env=cli_env())
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["crawl_id"] == crawl_id

    waited = await shardcrawl("wait", crawl_id, env=cli_env())
    assert waited.returncode == 0, waited.stderr
    assert "completed" in waited.stdout

    report = await shardcrawl("report", crawl_id, env=cli_env())
    assert report.returncode == 0, report.stderr
    expected = reachable_pages(site.config, [site.seed_url], max_depth=3)
    assert json.loads(report.stdout)["pages_fetched"] == len(read_items(out, crawl_id))
    assert {i["url"] for i in read_items(out, crawl_id)} >= set(expected)


async def test_pause_resume_and_cancel(client, cli_env, workers, site_factory, tmp_path):
    site = site_factory(ips=("127.0.0.2",), pages_per_host=60, delay_ms=150)
    workers.start(1)
    out = tmp_path / "out"
    started = await shardcrawl(
        "start",
        site.seed_url,
        "--out",
        str(out),
        "--allow-private-networks",
        "--concurrency-per-host",
        "1",
        "--batch-size",
        "2",
        env=cli_env(),
    )
    crawl_id = started.stdout.strip().splitlines()[-1]
    handle = client.get_workflow_handle(crawl_id)
    live = CrawlHandle(client, handle)  # shard counters by query, as `shardcrawl status` reads

    async def pages() -> int:
        return (await live.status()).totals.pages

    while await pages() < 3:
        await asyncio.sleep(0.2)
    assert (await shardcrawl("pause", crawl_id, env=cli_env())).returncode == 0
    while (await live.status()).totals.in_flight_batches:
        await asyncio.sleep(0.1)  # batches started before the pause land
    await asyncio.sleep(0.3)  # the site flushes its log every 0.1 s
    requests_at_pause = len(site.requests())
    await asyncio.sleep(1.5)
    assert len(site.requests()) == requests_at_pause, "requests were sent while paused"
    progress = await live.status()
    assert progress.state == "paused" and progress.totals.in_flight_batches == 0

    assert (await shardcrawl("resume", crawl_id, env=cli_env())).returncode == 0
    paused_at = progress.totals.pages
    while await pages() < paused_at + 3:
        await asyncio.sleep(0.2)

    cancelled = await shardcrawl("cancel", crawl_id, env=cli_env())
    assert cancelled.returncode == 0, cancelled.stderr
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    report = read_report(out, crawl_id)
    assert report["status"] == "cancelled"
    assert report["unfetched"] > 0
    assert report["pages_fetched"] == len(read_items(out, crawl_id))
    waited = await shardcrawl("wait", crawl_id, env=cli_env())
    assert waited.returncode == 1


async def test_run_starts_its_own_server_and_workers(site_factory, tmp_path):
    site = site_factory(ips=("127.0.0.4",), pages_per_host=12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARDCRAWL_", "TEMPORAL_"))}
    out = tmp_path / "out"
    result = await shardcrawl(
        "run",
        site.seed_url,
        "--out",
        str(out),
        "--workers",
        "2",
        "--allow-private-networks",
        "--max-depth",
        "3",
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    crawl_id = next(
        line.split(": ", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("crawl id: ")
    )
    report = read_report(out, crawl_id)
    assert report["status"] == "completed"
    assert report["pages_fetched"] == len(read_items(out, crawl_id)) > 10
    assert "pages fetched" in result.stdout


async def test_run_of_a_failing_crawl_names_the_cause_and_keeps_worker_logs_out(tmp_path):
    """The cause in one line, the workers' logs a path away (not dumped in the terminal)."""
    refused = f"http://127.0.0.35:{free_port('127.0.0.35')}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARDCRAWL_", "TEMPORAL_"))}
    result = await shardcrawl(
        "run", refused, "--out", str(tmp_path / "out"), "--workers", "1",
        "--allow-private-networks", env=env, timeout=180,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no page could be fetched: 1 URLs failed (connection_refused 1)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    logs = Path(result.stderr.split("worker logs: ", 1)[1].split()[0])
    assert (logs / "worker-0.log").is_file(), result.stderr


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split()
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_sigterm_to_run_leaves_no_process_behind(site_factory, tmp_path):
    site = site_factory(ips=("127.0.0.4",), pages_per_host=40, delay_ms=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARDCRAWL_", "TEMPORAL_"))}
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shardcrawl",
            "run",
            site.seed_url,
            "--out",
            str(tmp_path),
            "--workers",
            "2",
            "--allow-private-networks",
            "--concurrency-per-host",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout is not None
    for line in run.stdout:
        if line.startswith("crawl id: "):
            break
    started = descendants(run.pid)
    assert len(started) >= 3, "expected the dev server and two workers"
    run.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(run.wait, 90) == 130
    await asyncio.sleep(1)
    assert not [pid for pid in started if alive(pid)], "processes outlived `shardcrawl run`"
