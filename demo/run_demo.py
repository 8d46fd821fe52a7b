"""`make demo`: serve a small generated site on three loopback hosts and crawl it with
`shardcrawl run` (the embedded Temporal server and two worker processes), showing progress and
the final report. Output lands in ./output/<crawl id>/."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from shardcrawl.cli.main import main
from shardcrawl.core.ports import free_port
from shardcrawl.temporal.connection import exit_now
from shardcrawl.testing.sites.graph import SiteConfig
from shardcrawl.testing.sites.process import SiteProcess

IPS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def run_demo() -> int:
    port = free_port(IPS[0], also=IPS)
    config = SiteConfig(hosts=tuple(f"{ip}:{port}" for ip in IPS), pages_per_host=80, delay_ms=20)
    with (
        tempfile.TemporaryDirectory() as tmp,
        SiteProcess(config, Path(tmp) / "access.jsonl") as site,
    ):
        print(f"demo site: {', '.join('http://' + h for h in config.hosts)}", flush=True)
        args = ["run", site.seed_url, "--workers", "2", "--out", "output"]
        args += ["--allow-private-networks", "--max-depth", "6", "--concurrency-per-host", "4"]
        for ip in IPS:
            args += ["--allowed-domain", ip]
        code = main(args)
        requests = site.requests()
    print(f"the demo site served {len(requests)} requests", flush=True)
    return code


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    exit_now(run_demo())
