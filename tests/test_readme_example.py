"""The README's Python example, run as written against a real server, workers and site."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import read_report

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("### From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its Python example"
    return match.group(1)


def test_the_example_is_ten_lines_of_code():
    code = [line for line in readme_example().splitlines() if line.strip()]
    assert len(code) <= 10


async def test_the_readme_example_crawls(cli_env, workers, site_factory, tmp_path):
    site = site_factory(ips=("127.0.0.5",), pages_per_host=5, delay_ms=5)
    workers.start(1)
    out = tmp_path / "out"
    # Only the seed changes, with what a loopback site needs (and an output under tmp_path).
    source = readme_example().replace(
        'CrawlSpec(seeds=["https://example.com/"]',
        f'CrawlSpec(seeds=["{site.seed_url}"], allow_private_networks=True, output="{out}"',
    )
    assert site.seed_url in source
    script = tmp_path / "example.py"
    script.write_text(source)
    result = subprocess.run(
        [sys.executable, str(script)], env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    crawl_id, pages, *_ = result.stdout.split()
    assert int(pages) == read_report(out, crawl_id)["pages_fetched"] > 5


def test_run_exits_with_the_scripts_outcome(tmp_path):
    def outcome(body: str) -> subprocess.CompletedProcess[str]:
        script = tmp_path / "script.py"
        script.write_text(
            "from shardcrawl.temporal.client import run\n\n"
            f"async def main():\n    {body}\n\nrun(main())\n"
        )
        return subprocess.run([sys.executable, str(script)], capture_output=True, text=True)

    assert outcome("print('done')").returncode == 0
    assert outcome("raise SystemExit(3)").returncode == 3
    failed = outcome("raise ValueError('bad seed')")
    assert failed.returncode == 1 and "ValueError: bad seed" in failed.stderr
