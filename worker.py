"""A shardcrawl worker: hosts the crawl and shard workflows and the Scrapy activities.

The one composition root: it reads the configuration, builds the activity classes with their
dependencies and registers them. Run ``python worker.py`` or ``shardcrawl worker``; it serves
``$SHARDCRAWL_TASK_QUEUE`` on ``$TEMPORAL_ADDRESS`` until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.admin import AdminActivities
from activities.batch import BatchActivities
from activities.checkpoint import CheckpointActivities
from activities.fetch_options import SharedFetchOptions
from activities.previous import PreviousActivities, PreviousRecords
from activities.robots import RobotsActivities, RobotsRules
from activities.scrapy_runtime import ScrapyRuntime
from activities.sitemaps import SitemapActivities
from activities.stores import StoreCache
from activities.warc_index import WarcIndexActivities
from shardcrawl.config import Config
from shardcrawl.errors import ShardcrawlError
from shardcrawl.temporal_client import connect, ensure_search_attributes, metrics_runtime
from workflows.crawl import CrawlWorkflow
from workflows.shard import DomainShardWorkflow

__all__ = ["WORKFLOWS", "build_worker", "main", "run_worker"]

WORKFLOWS = [CrawlWorkflow, DomainShardWorkflow]
PASSTHROUGH_MODULES = ("shardcrawl", "w3lib", "pydantic", "pydantic_core", "yaml")
GRACEFUL_SHUTDOWN_SECONDS = 15

log = logging.getLogger("shardcrawl.worker")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with our pure modules passed through instead of re-imported per task."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def build_activities(config: Config) -> list[Callable[..., Any]]:
    """Every activity, bound to its dependencies: the one place they are composed."""
    runtime = ScrapyRuntime(spider_modules=config.spider_module_list())
    stores = StoreCache(s3_endpoint_url=config.s3_endpoint_url)
    fetch_options = SharedFetchOptions(stores)
    batch = BatchActivities(
        runtime=runtime,
        stores=stores,
        robots=RobotsRules(stores),
        previous=PreviousRecords(stores),
        fetch_options=fetch_options,
    )
    previous = PreviousActivities(stores=stores)
    robots = RobotsActivities(runtime=runtime, stores=stores, fetch_options=fetch_options)
    sitemaps = SitemapActivities(runtime=runtime, stores=stores, fetch_options=fetch_options)
    admin = AdminActivities(runtime=runtime, stores=stores)
    checkpoint = CheckpointActivities(stores=stores)
    warc_index = WarcIndexActivities(stores=stores)
    return [
        batch.crawl_batch,
        robots.fetch_robots,
        sitemaps.fetch_sitemaps,
        admin.prepare_crawl,
        admin.write_report,
        previous.previous_urls,
        checkpoint.save_segment,
        checkpoint.load_segment,
        checkpoint.delete_segments,
        checkpoint.check_store,
        warc_index.merge_warc_index,
    ]


def build_worker(
    client: Client, config: Config, *, activities: list[Callable[..., Any]] | None = None
) -> Worker:
    return Worker(
        client,
        task_queue=config.task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(config) if activities is None else activities,
        workflow_runner=workflow_runner(),
        max_concurrent_activities=config.max_concurrent_batches,
        graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN_SECONDS),
    )


async def run_worker(config: Config) -> None:
    runtime = metrics_runtime(config.metrics_address) if config.metrics_address else None
    client = await connect(config, wait_seconds=config.connect_wait_seconds, runtime=runtime)
    await ensure_search_attributes(client)
    worker = build_worker(client, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "worker on %s, namespace %s, task queue %s, metrics %s",
        config.temporal_address,
        config.temporal_namespace,
        config.task_queue,
        f"http://{config.metrics_address}/metrics" if config.metrics_address else "off",
    )
    async with worker:
        await stop.wait()
        log.info("stopping: finishing in-flight batches")


def main() -> int:
    try:
        config = Config.load()
        logging.basicConfig(
            level=config.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        logging.getLogger("scrapy").setLevel(logging.WARNING)
        logging.getLogger("twisted").setLevel(logging.WARNING)
        asyncio.run(run_worker(config))
    except ShardcrawlError as exc:
        print(f"shardcrawl worker: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from shardcrawl.temporal_client import exit_now

    exit_now(main())
