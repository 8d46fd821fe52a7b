"""A shardcrawl worker: hosts the crawl and shard workflows and the Scrapy activities.

The one composition root: it reads the configuration, builds the activity classes with their
dependencies and registers them. Run ``python worker.py`` or ``shardcrawl worker``; it serves
``$SHARDCRAWL_TASK_QUEUE`` on ``$TEMPORAL_ADDRESS`` until SIGINT or SIGTERM. With
``--fetch-queue FLEET`` (repeatable, or ``$SHARDCRAWL_FETCH_QUEUES``) it serves those fleets'
fetch activities instead (``default`` being the main queue, workflows and all). With ``--role
workflows`` or ``--role activities`` (``$SHARDCRAWL_WORKER_ROLE``) it runs only that half of
the main queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from shardcrawl.activities.admin import AdminActivities
from shardcrawl.activities.batch import BatchActivities
from shardcrawl.activities.checkpoint import CheckpointActivities
from shardcrawl.activities.fetch_options import SharedFetchOptions
from shardcrawl.activities.previous_crawl import PreviousCrawlActivities, PreviousCrawlRecords
from shardcrawl.activities.robots import RobotsActivities, RobotsRules
from shardcrawl.activities.scrapy_runtime import ScrapyRuntime
from shardcrawl.activities.sitemaps import SitemapActivities
from shardcrawl.activities.stores import StoreCache
from shardcrawl.activities.warc_index import WarcIndexActivities
from shardcrawl.core.errors import ShardcrawlError
from shardcrawl.core.fleet_names import DEFAULT_FLEET, fetch_task_queue
from shardcrawl.temporal.config import Config, add_worker_arguments, worker_overrides
from shardcrawl.temporal.connection import connect, ensure_search_attributes, metrics_runtime
from shardcrawl.workflows.crawl import CrawlWorkflow
from shardcrawl.workflows.proxy_broker import ProxyBrokerWorkflow
from shardcrawl.workflows.shard import DomainShardWorkflow

__all__ = ["WORKFLOWS", "build_worker", "build_workers", "main", "run_worker"]

WORKFLOWS = [CrawlWorkflow, DomainShardWorkflow, ProxyBrokerWorkflow]
# What a shard runs on a fleet's queue: everything that sends a request to a target.
FETCH_ACTIVITIES = ("crawl_batch", "fetch_robots", "fetch_sitemaps")
PASSTHROUGH_MODULES = (
    "shardcrawl.core",
    "shardcrawl.models",
    "shardcrawl.policy",
    "w3lib",
    "pydantic",
    "pydantic_core",
    "yaml",
)
GRACEFUL_SHUTDOWN_SECONDS = 15

log = logging.getLogger("shardcrawl.worker")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with our pure modules passed through instead of re-imported per task."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def build_activities(config: Config) -> list[Callable[..., Any]]:
    """Every activity, bound to its dependencies: the one place they are composed."""
    runtime = ScrapyRuntime(
        spider_modules=config.spider_module_list(), bind_address=config.bind_address
    )
    stores = StoreCache(s3_endpoint_url=config.s3_endpoint_url)
    fetch_options = SharedFetchOptions(stores)
    batch = BatchActivities(
        runtime=runtime,
        stores=stores,
        robots=RobotsRules(stores),
        previous_crawl=PreviousCrawlRecords(stores),
        fetch_options=fetch_options,
    )
    previous_crawl = PreviousCrawlActivities(stores=stores)
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
        previous_crawl.previous_crawl_urls,
        checkpoint.save_segment,
        checkpoint.load_segment,
        checkpoint.delete_segments,
        checkpoint.check_store,
        warc_index.merge_warc_index,
    ]


def build_worker(
    client: Client, config: Config, *, activities: list[Callable[..., Any]] | None = None
) -> Worker:
    """The main queue's worker: the workflows and every activity, or one of the two
    (``worker_role``)."""
    if activities is None:
        activities = [] if config.worker_role == "workflows" else build_activities(config)
    return Worker(
        client,
        task_queue=config.task_queue,
        workflows=[] if config.worker_role == "activities" else WORKFLOWS,
        activities=[] if config.worker_role == "workflows" else activities,
        workflow_runner=workflow_runner(),
        max_concurrent_activities=config.max_concurrent_batches,
        graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN_SECONDS),
    )


def build_workers(
    client: Client, config: Config, activities: list[Callable[..., Any]]
) -> list[Worker]:
    """One Temporal worker per fleet served, sharing one set of activities (one Scrapy
    runtime): the default fleet's on the main queue, another fleet's on its fetch queue with
    only the activities that fetch (the workflows stay on the main queue)."""
    workers = []
    for fleet in config.fleets():
        if fleet == DEFAULT_FLEET:
            workers.append(build_worker(client, config, activities=activities))
            continue
        workers.append(
            Worker(
                client,
                task_queue=fetch_task_queue(config.task_queue, fleet),
                activities=[a for a in activities if a.__name__ in FETCH_ACTIVITIES],
                max_concurrent_activities=config.max_concurrent_batches,
                graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN_SECONDS),
            )
        )
    return workers


async def run_worker(config: Config) -> None:
    # Before connecting: a bad setting (spider modules, bind address) stops the worker at once.
    # A worker of workflows alone loads no Scrapy.
    activities = [] if config.worker_role == "workflows" else build_activities(config)
    runtime = metrics_runtime(config.metrics_address) if config.metrics_address else None
    client = await connect(config, wait_seconds=config.connect_wait_seconds, runtime=runtime)
    await ensure_search_attributes(client)
    workers = build_workers(client, config, activities)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "worker (%s) on %s, namespace %s, task queues %s, sending from %s, metrics %s",
        config.worker_role,
        config.temporal_address,
        config.temporal_namespace,
        ", ".join(w.task_queue for w in workers),
        config.bind_address or "any address",
        f"http://{config.metrics_address}/metrics" if config.metrics_address else "off",
    )
    async with contextlib.AsyncExitStack() as running:
        for worker in workers:
            await running.enter_async_context(worker)
        await stop.wait()
        log.info("stopping: finishing in-flight batches")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="worker.py", description=__doc__.splitlines()[0])
    add_worker_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, args: argparse.Namespace | None = None) -> int:
    """``argv``: this process's flags (``python worker.py ...``); ``args``: flags already
    parsed (``shardcrawl worker ...``)."""
    args = args if args is not None else parse_args(argv)
    try:
        config = Config.load(**worker_overrides(args))
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
    from shardcrawl.temporal.connection import exit_now

    exit_now(main())
