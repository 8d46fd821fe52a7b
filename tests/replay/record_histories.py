"""Records the histories the replay test checks: run after a change to workflow code that is
meant to be compatible, and commit the JSON. ``python -m tests.replay.record_histories``.

It starts its own dev server, site and worker, runs one small crawl across two hosts and two
shards (with a robots.txt, redirects of the link graph, one host's requests through a proxy, a
pause/resume and continue-as-new every ~100 events), and writes every run of the crawl and of
each shard to tests/replay/histories/ as WORKFLOW_ID.RUN_NUMBER.json (``/`` in ids written
``__``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from temporalio.client import Client

from shardcrawl.core.ports import free_port
from shardcrawl.models import CrawlReport
from shardcrawl.temporal.devserver import DevServer
from shardcrawl.temporal.local_processes import worker_command
from shardcrawl.temporal.wire import data_converter
from shardcrawl.testing.history_audit import audit_crawl
from shardcrawl.testing.sites.graph import SiteConfig, reachable_pages
from shardcrawl.testing.sites.process import SiteProcess
from tests.proxy_lab import ProxyLab

HISTORIES = Path(__file__).parent / "histories"
TASK_QUEUE = "record-histories"


async def record(address: str, site: SiteProcess, proxy: str, out: Path) -> None:
    client = await Client.connect(address, data_converter=data_converter)
    spec = {
        "seeds": [site.seed_url],
        "allowed_domains": ["127.0.0.2", "127.0.0.3"],
        "max_depth": 5,
        # A tight pool goes out in many small grants: messages enough for the crawl
        # workflow to continue as new too.
        "max_pages": len(reachable_pages(site.config, [site.seed_url], max_depth=5)) + 20,
        "shards": 2,
        "batch_size": 3,
        "concurrency_per_host": 2,
        "output": str(out),
        "allow_private_networks": True,
        "history_events_per_run": 100,
        "proxies": {
            "pools": {"lab": {"proxies": [{"url": proxy, "capacity": 2}]}},
            "routes": [{"domains": ["127.0.0.3"], "pool": "lab", "mode": "sticky"}],
        },
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
    for old in HISTORIES.glob("*.json"):
        old.unlink()
    numbers: dict[str, int] = {}
    for run in await audit_crawl(client, "crawl-replay"):
        number = numbers[run.workflow_id] = numbers.get(run.workflow_id, -1) + 1
        handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
        history = await handle.fetch_history()
        name = f"{run.workflow_id.replace('/', '__')}.{number}.json"
        (HISTORIES / name).write_text(history.to_json())
        print("wrote", HISTORIES / name, len(history.events), "events")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port("127.0.0.2", also=("127.0.0.3",))
        config = SiteConfig(hosts=(f"127.0.0.2:{port}", f"127.0.0.3:{port}"), pages_per_host=30)
        lab = ProxyLab({"p": "127.0.0.13"}, {}, Path(tmp) / "proxy.jsonl")
        with DevServer(headless=True) as server, SiteProcess(config, Path(tmp) / "log") as site:
            env = dict(
                os.environ, TEMPORAL_ADDRESS=server.address, SHARDCRAWL_TASK_QUEUE=TASK_QUEUE
            )
            worker = subprocess.Popen(worker_command(), env=env)
            try:
                asyncio.run(record(server.address, site, lab.proxy_url("p"), Path(tmp) / "out"))
                if not lab.entries("proxy"):
                    raise RuntimeError("the recorded crawl sent nothing through its proxy")
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
                lab.close()


if __name__ == "__main__":
    main()
