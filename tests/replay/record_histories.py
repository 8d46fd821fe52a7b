"""Records the histories the replay test checks: run after a change to workflow code that is
meant to be compatible, and commit the JSON. ``python -m tests.replay.record_histories``.

It starts its own dev server, site and worker, runs one small crawl across two hosts and two
shards (with a robots.txt, redirects of the link graph and a pause/resume), and writes the
crawl's and every shard's history to tests/replay/histories/.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from shardcrawl.contracts import CrawlReport
from shardcrawl.devserver import DevServer
from shardcrawl.fleet import worker_command
from shardcrawl.sites.graph import SiteConfig
from shardcrawl.sites.process import SiteProcess, free_port

HISTORIES = Path(__file__).parent / "histories"
TASK_QUEUE = "record-histories"


async def record(address: str, site: SiteProcess, out: Path) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    spec = {
        "seeds": [site.seed_url],
        "allowed_domains": ["127.0.0.2", "127.0.0.3"],
        "max_depth": 3,
        "shards": 2,
        "batch_size": 5,
        "concurrency_per_host": 2,
        "output": str(out),
        "allow_private_networks": True,
    }
    handle = await client.start_workflow(
        "CrawlWorkflow", spec, id="crawl-replay", task_queue=TASK_QUEUE, result_type=CrawlReport
    )
    await asyncio.sleep(1.0)
    await handle.signal("pause")
    await asyncio.sleep(1.0)
    await handle.signal("resume")
    await handle.result()
    HISTORIES.mkdir(exist_ok=True)
    for workflow_id in ["crawl-replay", "crawl-replay/shard-0", "crawl-replay/shard-1"]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        name = workflow_id.replace("/", "__") + ".json"
        (HISTORIES / name).write_text(history.to_json())
        print("wrote", HISTORIES / name)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port("127.0.0.2")
        config = SiteConfig(hosts=(f"127.0.0.2:{port}", f"127.0.0.3:{port}"), pages_per_host=12)
        with DevServer(headless=True) as server, SiteProcess(config, Path(tmp) / "log") as site:
            env = dict(
                os.environ, TEMPORAL_ADDRESS=server.address, SHARDCRAWL_TASK_QUEUE=TASK_QUEUE
            )
            worker = subprocess.Popen(worker_command(), env=env)
            try:
                asyncio.run(record(server.address, site, Path(tmp) / "out"))
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)


if __name__ == "__main__":
    main()
