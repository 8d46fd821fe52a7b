"""A worker cut off from the network in the middle of a batch: it runs in a namespace of its
own, joined to ours by a veth pair that the test takes down for 60 s. Its batch runs again
on another worker once its heartbeat times out; when the cut-off worker comes back, its late
result is refused by Temporal and it writes nothing over the accepted run's files (it
checks that its attempt is still current first). Every page is in the output once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from shardcrawl.temporal.local_processes import stop_processes
from shardcrawl.testing.sites.graph import reachable_pages
from tests.helpers import start_crawl
from tests.netns import joined, netns_available
from tests.tcp_forwarder import TcpForwarder
from tests.test_node_loss import MAX_DEPTH, assert_exactly_once, pids_running_batches

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root and iproute2")

CUT_SECONDS = 60


async def test_a_worker_cut_off_mid_batch_loses_and_duplicates_nothing(
    client, workers, task_queue, temporal_server, site_factory, tmp_path
):
    with joined() as link:
        site = site_factory(ips=(link.host_ip,), pages_per_host=40, delay_ms=300)
        out = tmp_path / "out"
        # The session's Temporal server, reached from the namespace over the veth.
        host, port = temporal_server.address.rsplit(":", 1)
        relay = TcpForwarder(host, int(port), host=link.host_ip)
        await relay.forward()
        env = {**workers.env(), "TEMPORAL_ADDRESS": f"{link.host_ip}:{relay.port}"}
        cut_log = tmp_path / "cut-worker.log"
        cut_off: list[subprocess.Popen[bytes]] = []
        try:
            with cut_log.open("ab") as log:
                cut_off.append(
                    subprocess.Popen(
                        [
                            "ip",
                            "netns",
                            "exec",
                            link.name,
                            sys.executable,
                            "-m",
                            "shardcrawl.temporal.worker",
                        ],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            spec = {
                "seeds": [site.seed_url],
                "max_depth": MAX_DEPTH,
                "concurrency_per_host": 2,
                "batch_size": 8,
                "shards": 1,
                "output": str(out),
                "allow_private_networks": True,
                "download_timeout_seconds": 5.0,
            }
            handle = await start_crawl(client, spec, task_queue)
            pid = cut_off[0].pid
            for _ in range(600):
                if pid in await pids_running_batches(client, handle.id, 1):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the namespaced worker never ran a batch")
            link.cut()
            try:
                workers.start(1)
                await asyncio.sleep(CUT_SECONDS)
            finally:
                link.restore()
            report = await asyncio.wait_for(handle.result(), timeout=240)
            # The cut-off worker is back: give its late completion and its check time to land.
            await asyncio.sleep(8)
        finally:
            stop_processes(cut_off)
            await relay.refuse()
        served = [e["path"] for e in site.requests()]
    assert report.batch_retries >= 1, "the cut-off batch was not run again"
    assert "AttemptSuperseded" in cut_log.read_text(errors="replace"), "no late attempt seen"
    for path in (out / handle.id / "items").rglob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            json.loads(line)  # every items file parses, line by line
    await assert_exactly_once(client, site, out, handle.id)
    expected = set(reachable_pages(site.config, [site.seed_url], max_depth=MAX_DEPTH))
    fetched = {
        f"http://{link.host_ip}:{site.seed_url.rsplit(':', 1)[1].split('/')[0]}{p}" for p in served
    }
    assert expected <= fetched, f"never served: {sorted(expected - fetched)[:5]}"
