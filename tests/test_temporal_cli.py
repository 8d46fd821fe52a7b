"""The spec JSON starts a crawl with the real ``temporal`` binary, and bad input sent that way
fails the workflow at once, naming the field, instead of leaving it 'Running'."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from shardcrawl.models import CrawlReport
from shardcrawl.temporal.devserver import temporal_binary
from shardcrawl.testing.sites.graph import reachable_pages
from tests.helpers import read_items


def temporal_start(address: str, task_queue: str, workflow_id: str, *input_args: str) -> None:
    subprocess.run(
        [
            temporal_binary(),
            "workflow",
            "start",
            "--address",
            address,
            "--type",
            "CrawlWorkflow",
            "--task-queue",
            task_queue,
            "--workflow-id",
            workflow_id,
            *input_args,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )


async def test_spec_json_starts_a_crawl_with_the_temporal_cli(
    client, temporal_server, workers, task_queue, site_factory, tmp_path
):
    site = site_factory(ips=("127.0.0.2",), pages_per_host=10, extras=False, variants=False)
    out = tmp_path / "out"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps({"seeds": [site.seed_url], "output": str(out), "allow_private_networks": True})
    )
    workers.start(1)
    temporal_start(
        temporal_server.address, task_queue, "crawl-from-cli", "--input-file", str(spec_file)
    )
    handle = client.get_workflow_handle("crawl-from-cli", result_type=CrawlReport)
    report = await asyncio.wait_for(handle.result(), timeout=120)
    assert report.status == "completed"
    expected = reachable_pages(site.config, [site.seed_url], max_depth=5)
    assert report.pages_fetched == len(expected) == 11
    assert {item["url"] for item in read_items(out, "crawl-from-cli")} == set(expected)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"seeds": ["http://127.0.0.2/"], "max_pages": -5}, "max_pages"),
        ({"seeds": ["ftp://127.0.0.2/"], "allow_private_networks": True}, "seeds"),
        ({"seeds": ["http://example.com/"], "max_paegs": 10}, "max_paegs"),
    ],
)
async def test_bad_input_from_the_temporal_cli_fails_at_once_naming_the_field(
    client, temporal_server, workers, task_queue, spec, field
):
    workers.start(1)
    workflow_id = f"bad-input-{field}-{time.monotonic_ns()}"
    temporal_start(temporal_server.address, task_queue, workflow_id, "--input", json.dumps(spec))
    handle = client.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=60)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidCrawlSpec"
    assert cause.non_retryable
    assert field in cause.message
