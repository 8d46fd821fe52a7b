"""The progress display and the final report on an 80 x 24 terminal, from a real crawl's
status: the state shows, host names are whole, the busiest hosts and "N more" fit, the
internals wait for --verbose, and the report shows once, with paths as paths."""

from __future__ import annotations

import asyncio
import re

from rich.console import Console

from shardcrawl.cli.display import estimate, progress_line, progress_table
from shardcrawl.cli.report_view import report_table
from shardcrawl.models import CrawlProgress, CrawlReport, ShardTotals
from shardcrawl.temporal.client import CrawlHandle
from tests.helpers import shardcrawl

HOSTS = tuple(f"127.0.3.{i}" for i in range(2, 18))  # 16 hosts: more than 24 lines hold
INTERNALS = ("history", "largest payload", "continued as new", "seen-set")


def screen(renderable: object, *, width: int = 80, height: int = 24) -> list[str]:
    console = Console(width=width, height=height, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def assert_fits(lines: list[str], *, width: int = 80, height: int | None = 24) -> None:
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, "\n".join(too_wide)
    if height is not None:
        assert len(lines) < height, "\n".join(lines)


def host_names(lines: list[str]) -> set[str]:
    return {m for line in lines for m in re.findall(r"\b127\.0\.3\.\d+\b", line)}


async def test_live_view_and_report_fit_80_by_24(client, cli_env, workers, site_factory, tmp_path):
    site = site_factory(ips=HOSTS, pages_per_host=15, delay_ms=100, cross_host_ratio=0.5)
    workers.start(2)
    out = tmp_path / "out"
    domains = [arg for host in HOSTS for arg in ("--allowed-domain", host)]
    started = await shardcrawl(
        "start", site.seed_url, "--out", str(out), "--allow-private-networks", *domains,
        "--concurrency-per-host", "1", "--batch-size", "3", "--max-depth", "4", env=cli_env(),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    crawl_id = started.stdout.strip().splitlines()[-1]
    live = CrawlHandle(client, client.get_workflow_handle(crawl_id, result_type=CrawlReport))

    progress = await live.status()
    while len(progress.hosts) < len(HOSTS) or progress.totals.pages < 40:
        assert progress.state in ("starting", "running"), progress.model_dump_json(indent=1)
        await asyncio.sleep(0.3)
        progress = await live.status()
    assert progress.state == "running"
    await live.pause()  # to see "paused" from the CLI below, before the crawl is over
    lines = screen(progress_table(progress))
    assert_fits(lines)
    assert lines[0].startswith(f"{crawl_id}  running  ")
    assert re.search(r"\d+% of [\d,]+ known URLs", lines[0]), lines[0]
    assert "last min" in "\n".join(lines)
    shown = host_names(lines)
    assert shown and shown <= set(HOSTS)  # whole names, never "127.0.3…"
    more = next(line for line in lines if "more" in line)
    assert int(more.split()[1]) == len(HOSTS) - len(shown), "\n".join(lines)
    assert not any(word in "\n".join(lines) for word in INTERNALS)
    verbose = "\n".join(screen(progress_table(progress, verbose=True), width=120, height=60))
    assert all(word in verbose for word in INTERNALS), verbose
    wide = screen(progress_table(progress), width=160, height=60)
    assert len(host_names(wide)) > len(shown)  # a larger console shows more hosts
    assert "requests" in wide[next(i for i, s in enumerate(wide) if s.startswith("host "))]

    # The CLI itself, at 80 x 24: paused shows, as `status` prints it.
    status = await shardcrawl("status", crawl_id, env=cli_env(COLUMNS="80", LINES="24"))
    assert status.returncode == 0, status.stderr
    printed = status.stdout.splitlines()
    assert_fits(printed)
    assert printed[0].startswith(f"{crawl_id}  paused"), status.stdout
    assert host_names(printed) and host_names(printed) <= set(HOSTS)
    assert (await shardcrawl("resume", crawl_id, env=cli_env())).returncode == 0

    waited = await shardcrawl("wait", crawl_id, env=cli_env(COLUMNS="80", LINES="24"))
    assert waited.returncode == 0, waited.stderr
    final = waited.stdout.splitlines()
    assert_fits(final, height=None)
    assert final[0] == f"{crawl_id}: completed"
    # A path wider than the terminal folds onto the next line, as it is.
    unfolded = waited.stdout.replace("\n", "")
    assert f"output: {out}" in unfolded and "file://" not in unfolded
    assert host_names(final) == set(HOSTS)  # every host, in one hosts table
    assert sum(line.startswith("host ") for line in final) == 1
    report = await live.report()
    assert report is not None
    assert_fits(screen(report_table(report)), height=None)


def test_text_from_data_is_never_read_as_markup() -> None:
    """States in brackets were dropped by rich; a store's error holds brackets too."""
    progress = CrawlProgress(
        crawl_id="c1",
        state="failed",
        failure="store file:///proc/nope: not writable: [Errno 2] No such file [bold]x[/bold]",
    )
    text = "\n".join(screen(progress_table(progress)))
    assert "c1  failed" in text
    assert "[Errno 2] No such file [bold]x[/bold]" in text.replace("\n", " ").replace("  ", " ")


def test_estimate_counts_known_work_and_the_last_minute() -> None:
    now = 1_000_000.0
    slot = int(now // 10)
    progress = CrawlProgress(
        crawl_id="c1",
        state="running",
        max_pages=1000,
        elapsed_seconds=600,
        totals=ShardTotals(
            pages=290,
            failures=10,
            queued=80,
            retry_waiting=10,
            in_flight_batches=10,
            # 60 pages in the six slots of the last minute; an older slot does not count.
            recent_pages={str(slot - i): 10 for i in range(6)} | {str(slot - 6): 500},
        ),
    )
    guess = estimate(progress, now=now)
    assert (guess.done, guess.total) == (300, 400)
    assert guess.fraction == 0.75
    assert round(guess.recent_pages_per_second, 3) == round(60 / (now - (slot - 5) * 10), 3)
    assert guess.eta_seconds == 100 / guess.recent_pages_per_second
    capped = estimate(progress.model_copy(update={"max_pages": 320}), now=now)
    assert capped.total == 320
    assert "75% of 400 known URLs, eta" in progress_line(progress, now=now)
    assert estimate(progress, now=now + 120).eta_seconds is None  # nothing in the last minute
