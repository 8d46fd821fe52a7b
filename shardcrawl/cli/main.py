"""The ``shardcrawl`` command line: run, start, schedule and steer crawls; run a server or a
worker.

Exit codes: 0 success (for ``run`` and ``wait``: the crawl completed), 1 the crawl did not
complete, 2 a usage, spec or connection error (printed without a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.live import Live
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from shardcrawl.cli.display import progress_line, progress_table, report_table
from shardcrawl.cli.export import FORMATS, export, item_keys
from shardcrawl.cli.schedule import add_schedule_parser, cmd_schedule
from shardcrawl.cli.spec_file import load_spec_file
from shardcrawl.core import layout
from shardcrawl.core.errors import ExportError, ShardcrawlError, SpecError, root_cause
from shardcrawl.core.layout import shown_location
from shardcrawl.models import CrawlReport, CrawlSpec
from shardcrawl.models.validation import parse_spec
from shardcrawl.policy.visibility import crawls_view_url
from shardcrawl.store import normalize_store_url, open_store
from shardcrawl.temporal.client import CrawlClient, CrawlHandle, new_crawl_id
from shardcrawl.temporal.config import Config, add_worker_arguments
from shardcrawl.temporal.connection import exit_now

__all__ = ["build_parser", "entrypoint", "main"]

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_ERROR = 0, 1, 2
CANCEL_WAIT_SECONDS = 60
_SPEC_FLAGS = {
    "allowed_domains": "allowed_domains",
    "max_pages": "max_pages",
    "max_depth": "max_depth",
    "concurrency_per_host": "concurrency_per_host",
    "delay": "delay_seconds",
    "batch_size": "batch_size",
    "shards": "shards",
    "spider": "spider",
    "out": "output",
    "previous_crawl": "previous_crawl",
    "include": "include",
    "exclude": "exclude",
    "strip_query_params": "strip_query_params",
    "max_pages_per_host": "max_pages_per_host",
    "order": "order",
    "sitemaps": "sitemaps",
    "warc": "warc",
    "warc_dedup": "warc_dedup",
    "store_bodies": "store_bodies",
}

console = Console()
err_console = Console(stderr=True)


class CrawlNotCompleted(Exception):
    """A crawl ended without completing; the CLI exits 1."""


def _add_spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("urls", nargs="*", metavar="URL", help="seed URLs")
    parser.add_argument("--spec", help="crawl spec file (YAML or JSON); flags override it")
    parser.add_argument("--out", help="output: a directory, file://PATH or s3://BUCKET/PREFIX")
    parser.add_argument("--max-pages", type=int)
    parser.add_argument("--max-depth", type=int)
    parser.add_argument("--concurrency-per-host", type=int)
    parser.add_argument("--delay", type=float, help="seconds between requests to one host")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--shards", type=int)
    parser.add_argument("--spider", help="spider name from spiders/ (default: pages)")
    parser.add_argument(
        "--previous-crawl",
        metavar="ID",
        help="recrawl incrementally: ask again for that crawl's pages, conditionally",
    )
    parser.add_argument(
        "--allowed-domain",
        dest="allowed_domains",
        action="append",
        help="host allowed with its subdomains (repeatable; default: the seeds' hosts)",
    )
    parser.add_argument(
        "--allow-private-networks",
        action="store_true",
        default=None,
        help="allow private and loopback addresses (intranets, tests)",
    )
    parser.add_argument(
        "--include",
        action="append",
        metavar="REGEX",
        help="a discovered URL must match one of these to be crawled (repeatable)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="REGEX",
        help="a discovered URL matching one is not crawled; wins over --include (repeatable)",
    )
    parser.add_argument(
        "--strip-query-param",
        dest="strip_query_params",
        action="append",
        metavar="NAME",
        help="query parameter dropped before dedup, a name or glob: utm_* (repeatable)",
    )
    parser.add_argument("--max-pages-per-host", type=int)
    parser.add_argument("--order", choices=["breadth_first", "depth_first", "priority"])
    parser.add_argument(
        "--sitemaps",
        choices=["off", "discover", "only"],
        help="discover (default): also what robots.txt's sitemaps list; only: just that",
    )
    parser.add_argument(
        "--warc",
        action="store_true",
        default=None,
        help="also write WARC/1.1 files and a CDXJ index under OUT/ID/warc/",
    )
    parser.add_argument(
        "--warc-dedup",
        choices=["off", "digest"],
        help="digest: a page identical to the previous crawl's is a revisit record",
    )
    parser.add_argument(
        "--store-bodies",
        action="store_true",
        default=None,
        help="keep page bodies under OUT/ID/bodies/, referenced from each record",
    )
    parser.add_argument("--id", dest="crawl_id", help="crawl id (default: generated)")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show internals: history sizes, payloads, continue-as-new, seen-set memory",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shardcrawl",
        description="Durable, distributed web crawls on Temporal and Scrapy.",
        allow_abbrev=False,
    )
    # Subparsers made by add_parser take the keyword too: no command takes a prefix of an
    # option for the option (--max-page is a typo, not --max-pages).
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="crawl to completion with local workers, show progress")
    _add_spec_options(run)
    run.add_argument("--workers", type=_positive, default=2, help="local worker processes")
    _add_verbose(run)
    run.add_argument(
        "--worker-logs",
        action="store_true",
        help="print the end of the workers' logs if the crawl does not complete (they are "
        "kept in .shardcrawl/logs/CRAWL_ID/ either way)",
    )

    start = sub.add_parser("start", help="submit a crawl to a running cluster, print its id")
    _add_spec_options(start)

    server = sub.add_parser("server", help="the embedded Temporal dev server with its UI")
    server.add_argument("--ip", default="127.0.0.1")
    server.add_argument("--port", type=int, default=7233)
    server.add_argument("--ui-port", type=int, default=8233)
    server.add_argument("--db", default=".shardcrawl/temporal.db", help="persistent state file")

    add_worker_arguments(
        sub.add_parser("worker", help="one worker process against $TEMPORAL_ADDRESS")
    )

    status = sub.add_parser("status", help="live progress of a crawl")
    status.add_argument("crawl_id")
    status.add_argument("--json", action="store_true", help="print the progress as JSON")
    status.add_argument("--watch", action="store_true", help="refresh until the crawl ends")
    _add_verbose(status)
    for name, text in [
        ("wait", "block until the crawl ends; exit 0 only if it completed"),
        ("pause", "stop starting new batches"),
        ("resume", "start batches again"),
        ("cancel", "stop the crawl cleanly, writing its report"),
    ]:
        sub.add_parser(name, help=text).add_argument("crawl_id")
    report = sub.add_parser("report", help="print the final report as JSON")
    report.add_argument("crawl_id")
    report.add_argument("--html", action="store_true", help="print where report.html is")
    report.add_argument("--open", action="store_true", help="open report.html in a browser")
    export = sub.add_parser("export", help="a crawl's records merged into one JSONL or CSV file")
    export.add_argument("crawl_id")
    export.add_argument("--format", choices=FORMATS, default="jsonl")
    export.add_argument("--out", help="the file to write (default: standard output)")
    export.add_argument(
        "--from",
        dest="source",
        metavar="OUT",
        help="the crawl's output (a directory or s3://BUCKET/PREFIX; default: asked of Temporal)",
    )
    add_schedule_parser(sub, _add_spec_options)
    return parser


def spec_from_args(args: argparse.Namespace) -> CrawlSpec:
    """The spec file, overridden by flags, validated, with a local output made absolute."""
    data: dict[str, Any] = load_spec_file(args.spec) if args.spec else {}
    if args.urls:
        data["seeds"] = list(args.urls)
    for flag, field in _SPEC_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            data[field] = value
    if args.allow_private_networks:
        data["allow_private_networks"] = True
    if "output" in data and isinstance(data["output"], str):
        try:
            data["output"] = normalize_store_url(data["output"])
        except ValueError as exc:
            raise SpecError(f"invalid crawl spec:\noutput: {exc}") from None
    else:
        data["output"] = normalize_store_url("output")
    spec = parse_spec(data)
    _check_spider(spec.spider)
    if spec.output.startswith("file://"):
        # Checked here, before anything starts, not by the first batch on some worker.
        open_store(spec.output).check_writable()
    return spec


def _check_spider(name: str) -> None:
    from shardcrawl.activities.scrapy_runtime import ScrapyRuntime, UnknownSpiderError

    try:
        ScrapyRuntime(spider_modules=Config.load().spider_module_list()).spider_class(name)
    except UnknownSpiderError as exc:
        raise SpecError(f"invalid crawl spec:\nspider: {exc}") from None


# Each refresh is a query to the crawl and three to each shard, some 3 ms of the Temporal
# server's CPU each (docs/benchmarks.md): every 0.5 s that was 0.4 ms a page on a broad crawl.
REFRESH_SECONDS = 2.0


async def _watch(handle: CrawlHandle, *, verbose: bool = False, interval: float = 0.5) -> None:
    """Show progress until the crawl closes: a live view sized to the terminal, lines
    otherwise, refreshed every REFRESH_SECONDS (the end is seen within ``interval``). The
    live view goes when the crawl ends, so that the report shows once."""
    last = 0.0
    if console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            while await _running(handle):
                if time.monotonic() - last >= REFRESH_SECONDS:
                    live.update(progress_table(await handle.status(), verbose=verbose))
                    last = time.monotonic()
                await asyncio.sleep(interval)
        return
    while await _running(handle):
        if time.monotonic() - last >= REFRESH_SECONDS:
            console.print(progress_line(await handle.status()), highlight=False, markup=False)
            last = time.monotonic()
        await asyncio.sleep(interval)


async def _running(handle: CrawlHandle) -> bool:
    return await handle.execution_status() == WorkflowExecutionStatus.RUNNING


async def _until_closed(handle: CrawlHandle) -> None:
    while await _running(handle):
        await asyncio.sleep(0.5)


async def _final(handle: CrawlHandle) -> CrawlReport:
    """The report of a completed crawl; CrawlNotCompleted, with the reason, otherwise."""
    try:
        return await handle.wait()
    except WorkflowFailureError as exc:
        message = root_cause(exc)
        status = await handle.execution_status()
        name = status.name.lower() if status else "failed"
        raise CrawlNotCompleted(f"crawl {handle.crawl_id} {name}: {message}") from None


async def _start_and_follow(
    client: CrawlClient, spec: CrawlSpec, crawl_id: str | None, *, verbose: bool = False
) -> int:
    handle = await client.start(spec, crawl_id=crawl_id)
    console.print(f"crawl id: {handle.crawl_id}", highlight=False, markup=False)
    try:
        await _watch(handle, verbose=verbose)
    except asyncio.CancelledError:
        # Ctrl-C: cancel the crawl and give the workers (ours, for `run`) time to land its
        # in-flight batches and write the report before they are stopped.
        await handle.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_until_closed(handle), timeout=CANCEL_WAIT_SECONDS)
        raise
    report = await _final(handle)
    console.print(report_table(report))
    console.print(
        f"report: {shown_location(report.output).rstrip('/')}/{layout.report_key(report.crawl_id)}",
        highlight=False,
        markup=False,
    )
    return EXIT_OK


async def cmd_run(args: argparse.Namespace) -> int:
    from shardcrawl.temporal.fleet import LocalFleet

    spec = spec_from_args(args)
    config = Config.load()
    embedded = "TEMPORAL_ADDRESS" not in os.environ
    crawl_id = args.crawl_id or new_crawl_id()
    log_dir = Path(".shardcrawl", "logs", layout.crawl_folder(crawl_id)).resolve()
    fleet = LocalFleet(config, workers=args.workers, embedded=embedded, worker_log_dir=log_dir)
    try:
        config = fleet.start()
        if fleet.server is not None:
            console.print(
                f"Temporal UI, crawls only: {crawls_view_url(fleet.server.ui_url)}",
                highlight=False,
                markup=False,
            )
        client = await CrawlClient.connect(config)
        return await _start_and_follow(client, spec, crawl_id, verbose=args.verbose)
    except CrawlNotCompleted:
        # The workers' own words stay out of the terminal unless asked for: the cause is in
        # the message that follows; the logs are a path away.
        if args.worker_logs:
            err_console.print(fleet.worker_logs()[-2000:], highlight=False, markup=False)
        err_console.print(f"worker logs: {log_dir}", highlight=False, markup=False)
        raise
    finally:
        fleet.stop()


async def cmd_start(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    client = await CrawlClient.connect(Config.load())
    handle = await client.start(spec, crawl_id=args.crawl_id)
    print(handle.crawl_id)
    return EXIT_OK


async def cmd_status(args: argparse.Namespace) -> int:
    handle = (await CrawlClient.connect(Config.load())).get(args.crawl_id)
    if args.watch and not args.json:
        await _watch(handle, verbose=args.verbose)
        # The crawl ended: its report, once (a failed crawl has none: its state says why).
        report = None if await handle.failure() else await handle.report()
        if report is not None:
            console.print(report_table(report))
            return EXIT_OK
    progress = await handle.status()
    if args.json:
        print(progress.model_dump_json(indent=2))
    else:
        console.print(progress_table(progress, verbose=args.verbose))
    return EXIT_OK


async def cmd_wait(args: argparse.Namespace) -> int:
    handle = (await CrawlClient.connect(Config.load())).get(args.crawl_id)
    report = await _final(handle)
    console.print(report_table(report))
    return EXIT_OK


async def cmd_signal(args: argparse.Namespace) -> int:
    handle = (await CrawlClient.connect(Config.load())).get(args.crawl_id)
    if args.command == "pause":
        await handle.pause()
    elif args.command == "resume":
        await handle.resume()
    else:
        await handle.cancel()
        await _until_closed(handle)
    status = await handle.execution_status()
    print(
        f"{args.crawl_id}: {args.command} sent; workflow {status.name.lower() if status else '?'}"
    )
    return EXIT_OK


async def cmd_report(args: argparse.Namespace) -> int:
    handle = (await CrawlClient.connect(Config.load())).get(args.crawl_id)
    report = await handle.report()
    if report is None:
        failure = await handle.failure()
        if failure is not None:
            raise CrawlNotCompleted(f"crawl {args.crawl_id} failed, with no report: {failure}")
        raise CrawlNotCompleted(f"crawl {args.crawl_id} has no report yet: it is still running")
    if args.html or args.open:
        return _report_page(report, open_it=args.open)
    print(report.model_dump_json(indent=2))
    return EXIT_OK


def _report_page(report: CrawlReport, *, open_it: bool) -> int:
    """Print where the crawl's report.html is; with ``open_it``, open it (a local one)."""
    where = f"{shown_location(report.output).rstrip('/')}/{layout.report_html_key(report.crawl_id)}"
    local = report.output.startswith("file://")
    if local and not Path(where).is_file():
        raise ShardcrawlError(f"{where}: not there (a report written before report.html was)")
    print(where)
    if open_it:
        if not local:
            raise ShardcrawlError(f"--open: {where} is not local; open it from the store")
        import webbrowser

        webbrowser.open(Path(where).as_uri())
    return EXIT_OK


async def cmd_export(args: argparse.Namespace) -> int:
    config = Config.load()
    source = args.source
    if source is None:
        source = await (await CrawlClient.connect(config)).get(args.crawl_id).output()
    try:
        store = open_store(normalize_store_url(source), s3_endpoint_url=config.s3_endpoint_url)
    except ValueError as exc:
        raise ExportError(f"--from {source!r}: {exc}") from None
    if not item_keys(store, args.crawl_id):
        raise ExportError(
            f"no records of crawl {args.crawl_id} in {shown_location(store.url)} "
            "(is that its output? --from names it)"
        )
    if args.out is None:
        export(store, args.crawl_id, sys.stdout, format=args.format)
        return EXIT_OK
    try:
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            count = export(store, args.crawl_id, out, format=args.format)
    except OSError as exc:
        raise ExportError(f"--out {args.out}: {exc.strerror or exc}") from None
    err_console.print(
        f"{count} records of {args.crawl_id} to {args.out}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return EXIT_OK


def cmd_server(args: argparse.Namespace) -> int:
    from shardcrawl.temporal.devserver import DevServer

    server = DevServer(ip=args.ip, port=args.port, ui_port=args.ui_port, db_file=Path(args.db))
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    # Before the server starts, so that a signal during start-up still stops it.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.start()
        print(f"Temporal at {server.address} (UI {server.ui_url}), state in {args.db}", flush=True)
        print(f"crawls only: {crawls_view_url(server.ui_url)}", flush=True)
        while not stop["now"] and server.process and server.process.poll() is None:
            time.sleep(0.5)
    finally:
        server.stop()
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from shardcrawl.temporal import worker

    return worker.main(args=args)


async def _cancel_on_sigterm(command: Coroutine[Any, Any, int]) -> int:
    """SIGTERM ends a command like Ctrl-C does: cancelled, so that `run` cancels its crawl and
    stops the server and workers it started instead of leaving them behind."""
    task = asyncio.ensure_future(command)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 130


_ASYNC = {
    "run": cmd_run,
    "start": cmd_start,
    "status": cmd_status,
    "wait": cmd_wait,
    "pause": cmd_signal,
    "resume": cmd_signal,
    "cancel": cmd_signal,
    "report": cmd_report,
    "export": cmd_export,
    "schedule": lambda args: cmd_schedule(args, spec_from_args),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Seed URLs may also follow options (``schedule create NAME --every 1h URL``), which
    argparse alone leaves unrecognized once a positional before the options was matched."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and (not hasattr(args, "urls") or any(x.startswith("-") for x in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.urls = [*args.urls, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "server":
            return cmd_server(args)
        if args.command == "worker":
            return cmd_worker(args)
        return asyncio.run(_cancel_on_sigterm(_ASYNC[args.command](args)))
    except CrawlNotCompleted as exc:
        err_console.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        return EXIT_NOT_COMPLETED
    except (ShardcrawlError, RPCError) as exc:
        err_console.print(
            f"shardcrawl {args.command}: {exc}", highlight=False, markup=False, soft_wrap=True
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def entrypoint() -> NoReturn:
    """The ``shardcrawl`` console script."""
    exit_now(main())


if __name__ == "__main__":
    entrypoint()
