"""Every subcommand, given a user's mistake, says what is wrong in a line or two and exits
2 (or 1 for a crawl that did not complete): never a traceback."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers import shardcrawl, start_crawl

SEED = "http://127.0.0.33:9/"


def _no_traceback(result, code: int, says: str) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    assert says in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "--workers", "0", SEED], "--workers: 0 is not 1 or more"),
        (["run", "--workers", "two", SEED], "'two' is not a whole number"),
        (["start", "--max-page", "5", SEED], "unrecognized arguments: --max-page"),
        (
            ["start", "--out", "/proc/nope/out", "--allow-private-networks", SEED],
            "store file:///proc/nope/out: not writable",
        ),
        (["start", "--max-pages", "-5", SEED], "max_pages"),
        (["start", "--id", "has a space", SEED], "crawl"),
        (["status", "no-such-crawl-7f3a"], "no-such-crawl-7f3a"),
        (["wait", "no-such-crawl-7f3a"], "no-such-crawl-7f3a"),
        (["pause", "no-such-crawl-7f3a"], "no-such-crawl-7f3a"),
        (["cancel", "no-such-crawl-7f3a"], "no-such-crawl-7f3a"),
        (["report", "no-such-crawl-7f3a"], "no-such-crawl-7f3a"),
        (["export", "no-such-crawl-7f3a"], "no-such-crawl-7f3a"),
        (["export", "x", "--format", "xml"], "invalid choice: 'xml'"),
        (["export", "x", "--from", "ftp://x/y"], "--from 'ftp://x/y'"),
        (
            ["schedule", "create", "x", "--cron", "not a cron", "--allow-private-networks", SEED],
            "CronString does not have 5-7 fields",
        ),
        (["schedule", "describe", "no-such-schedule-7f3a"], "no-such-schedule-7f3a"),
        (["nope"], "invalid choice: 'nope'"),
        (["worker", "--fetch-queue", "EU"], "--fetch-queue: 'EU' is not a fleet name"),
        (["worker", "--bind-address", "eu"], "--bind-address: 'eu' is not an IP address"),
        (["worker", "--bind-address", "192.0.2.7"], "bind address '192.0.2.7': this machine"),
    ],
)
async def test_mistakes_get_one_clear_message(cli_env, args, says) -> None:
    _no_traceback(await shardcrawl(*args, env=cli_env()), 2, says)


async def test_a_crawl_id_already_used_is_refused_in_one_line(client, cli_env, tmp_path) -> None:
    crawl_id = f"taken-{uuid.uuid4().hex[:8]}"
    common = ["start", "--id", crawl_id, "--out", str(tmp_path), "--allow-private-networks", SEED]
    first = await shardcrawl(*common, env=cli_env())
    assert first.returncode == 0, first.stderr
    _no_traceback(await shardcrawl(*common, env=cli_env()), 2, f"crawl id {crawl_id!r} is taken")
    await client.get_workflow_handle(crawl_id).terminate("test over")  # it has no workers


async def test_a_failed_crawl_says_its_root_cause_everywhere(client, cli_env, workers, task_queue):
    """Not Temporal's 'Activity task failed': the store's own words, from wait, status and
    report (which must not guess 'still running')."""
    workers.start(1)
    handle = await start_crawl(
        client,
        {"seeds": [SEED], "output": "/proc/nope/out", "allow_private_networks": True},
        task_queue,
    )
    cause = "store file:///proc/nope/out: not writable"
    waited = await shardcrawl("wait", handle.id, env=cli_env())
    _no_traceback(waited, 1, cause)
    assert "Activity task failed" not in waited.stderr
    status = await shardcrawl("status", handle.id, env=cli_env())
    assert status.returncode == 0 and f"{handle.id}  failed" in status.stdout, status.stdout
    as_json = await shardcrawl("status", handle.id, "--json", env=cli_env())
    progress = json.loads(as_json.stdout)
    assert progress["state"] == "failed" and cause in progress["failure"], progress
    _no_traceback(await shardcrawl("report", handle.id, env=cli_env()), 1, cause)
