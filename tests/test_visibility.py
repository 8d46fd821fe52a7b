"""What the Temporal UI shows of a crawl, read back the way the UI reads it: list-workflows
queries on the search attributes, the memo, static summaries and current details."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from shardcrawl.models import CrawlSpec, shard_workflow_id
from shardcrawl.policy.visibility import CRAWLS_ONLY, crawls_view_url, shard_summary
from shardcrawl.temporal.client import CrawlClient


async def _listed(client: Client, query: str, *, want: int = 1, timeout: float = 30) -> list:
    """The workflows a query lists, once at least ``want`` show (visibility lags a little)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [w async for w in client.list_workflows(query)]
        if len(found) >= want or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.3)


async def test_crawls_are_found_by_status_seed_domain_and_pages(
    client, workers, task_queue, site_factory, tmp_path
):
    site = site_factory(ips=("127.0.0.2", "127.0.0.3"), pages_per_host=40, delay_ms=30)
    workers.start(1)
    crawls = CrawlClient(client, task_queue=task_queue)
    spec = CrawlSpec(
        seeds=[site.seed_url],
        allowed_domains=["127.0.0.2", "127.0.0.3"],
        allow_private_networks=True,
        output=str(tmp_path / "out"),
        max_depth=2,
        shards=2,
        concurrency_per_host=1,
    )
    handle = await crawls.start(spec, crawl_id=f"visible-{uuid.uuid4().hex[:8]}")
    mine = f"WorkflowId = '{handle.crawl_id}'"

    await handle.pause()
    paused = await _listed(client, f"{mine} AND ShardcrawlStatus = 'paused'")
    assert [w.id for w in paused] == [handle.crawl_id]
    live = client.get_workflow_handle(handle.crawl_id)
    metadata = await live.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details.startswith("paused: ")
    await handle.resume()
    report = await handle.wait()

    query = (
        f"{mine} AND ShardcrawlStatus = 'completed' AND ShardcrawlSeedDomains = '127.0.0.2' "
        f"AND ShardcrawlPagesFetched = {report.pages_fetched}"
    )
    (listed,) = await _listed(client, query)
    assert listed.typed_search_attributes  # the list itself carries them, for the UI's columns
    elsewhere = await _listed(client, f"{mine} AND ShardcrawlSeedDomains = '127.0.0.9'", want=0)
    assert elsewhere == []

    description = await client.get_workflow_handle(handle.crawl_id).describe()
    memo = await description.memo()
    assert memo["seeds"] == [site.seed_url] and memo["max_depth"] == 2 and memo["shards"] == 2
    summary, details = await description.static_summary(), await description.static_details()
    assert summary is not None and "127.0.0.2" in summary and "2 shards" in summary
    assert details is not None and "max_pages" in details

    # The saved view's query shows the crawl alone, not its two shards.
    family = f"WorkflowId STARTS_WITH '{handle.crawl_id}'"
    assert len(await _listed(client, family, want=3)) == 3
    crawls_only = await _listed(client, f"{CRAWLS_ONLY} AND {family}")
    assert [w.id for w in crawls_only] == [handle.crawl_id]
    assert crawls_view_url("http://127.0.0.1:8233/") == (
        "http://127.0.0.1:8233/namespaces/default/workflows"
        "?query=WorkflowType%20%3D%20%27CrawlWorkflow%27"
    )

    for index in range(2):
        shard = await client.get_workflow_handle(
            shard_workflow_id(handle.crawl_id, index)
        ).describe()
        assert await shard.static_summary() == shard_summary(index, 2)
        assert (await shard.memo())["shard"] == index


async def test_a_crawl_started_by_the_temporal_cli_path_still_has_its_memo_and_status(
    client, workers, task_queue, site_factory, tmp_path
):
    """Started with a bare spec mapping (as `temporal workflow start --input-file` does): no
    static summary, but the workflow sets its own memo and search attributes."""
    site = site_factory(ips=("127.0.0.4",), pages_per_host=5, delay_ms=5)
    workers.start(1)
    crawl_id = f"bare-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        "CrawlWorkflow",
        {"seeds": [site.seed_url], "allow_private_networks": True, "output": str(tmp_path)},
        id=crawl_id,
        task_queue=task_queue,
    )
    await handle.result()
    (listed,) = await _listed(
        client, f"WorkflowId = '{crawl_id}' AND ShardcrawlStatus = 'completed'"
    )
    memo = await (await handle.describe()).memo()
    assert memo["seed_count"] == 1 and memo["output"] == str(tmp_path)
