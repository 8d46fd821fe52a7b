"""Bad pages and unreachable hosts are recorded per URL; the crawl goes on and completes."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowFailureError

from shardcrawl.core.ports import free_port
from tests.helpers import read_items, read_report, shardcrawl, start_crawl
from tests.nasty_site import NastySite

MAX_REDIRECTS = 3


async def test_failures_are_recorded_and_the_crawl_completes(client, workers, task_queue, tmp_path):
    refused = f"http://127.0.0.9:{free_port('127.0.0.9')}"
    out = tmp_path / "out"
    workers.start(1)
    with NastySite("127.0.0.6", refused) as site:
        spec = {
            "seeds": [site.origin + "/"],
            "allowed_domains": ["127.0.0.6", "127.0.0.9", "169.254.169.254"],
            "output": str(out),
            "allow_private_networks": True,
            "max_redirects": MAX_REDIRECTS,
            "download_timeout_seconds": 1.5,
            "max_response_bytes": 4096,
            "max_depth": 10,
        }
        handle = await start_crawl(client, spec, task_queue)
        report = await asyncio.wait_for(handle.result(), timeout=120)
        requested = list(site.requests)

    assert report.status == "completed"
    assert report.failure_classes == {
        "connection_refused": 1,
        "forbidden_address": 1,
        "oversize": 1,
        "timeout": 1,
    }
    items = {item["url"]: item for item in read_items(out, handle.id)}
    assert items[site.origin + "/redirect/1"]["status"] == 301
    assert items[site.origin + "/redirect/1"]["redirect_to"] == site.origin + "/redirect/2"
    assert items[site.origin + "/final"]["items"] == [{"title": "final"}]
    assert items[site.origin + "/final"]["depth"] == 1, "a redirect keeps its source's depth"
    assert items[site.origin + "/binary"]["content_type"] == "application/octet-stream"
    assert "title" not in items[site.origin + "/binary"]
    assert "/never" not in requested, "a link inside a binary body was followed"
    loop_requests = [p for p in requested if p.startswith("/loop/")]
    assert len(loop_requests) == MAX_REDIRECTS + 1, loop_requests
    assert report.hosts["127.0.0.6"].failures == 2
    assert report.hosts["169.254.169.254"].requests == 0, "the metadata address was contacted"


async def test_a_crawl_that_fetched_no_page_fails_saying_why(
    client, workers, task_queue, tmp_path, cli_env
):
    """Every seed refused: not 'completed' with 0 pages, but failed, with the cause, its report
    written, and `wait` exiting 1."""
    refused = f"http://127.0.0.34:{free_port('127.0.0.34')}/"
    workers.start(1)
    out = tmp_path / "out"
    spec = {"seeds": [refused], "output": str(out), "allow_private_networks": True}
    handle = await start_crawl(client, spec, task_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=120)
    message = str(failed.value.cause)
    assert "no page could be fetched: 1 URLs failed (connection_refused 1)" in message, message
    assert read_report(out, handle.id)["status"] == "failed"
    waited = await shardcrawl("wait", handle.id, env=cli_env())
    assert waited.returncode == 1 and "no page could be fetched" in waited.stderr, waited
