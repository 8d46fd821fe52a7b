"""The commands' handlers, one a command, each returning the exit code."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from shardcrawl.cli.arguments import spec_from_args
from shardcrawl.cli.display import progress_table
from shardcrawl.cli.export import export, item_keys
from shardcrawl.cli.follow import show_final, start_and_follow, until_closed, watch_crawl
from shardcrawl.cli.report_view import report_table
from shardcrawl.cli.terminal import EXIT_OK, CrawlNotCompleted, console, err_console
from shardcrawl.core import layout
from shardcrawl.core.errors import ExportError, ShardcrawlError
from shardcrawl.core.layout import shown_location
from shardcrawl.models import CrawlReport
from shardcrawl.policy.visibility import crawls_view_url
from shardcrawl.store import normalize_store_url, open_store
from shardcrawl.temporal.client import CrawlClient, new_crawl_id
from shardcrawl.temporal.config import Config


async def cmd_run(args: argparse.Namespace) -> int:
    from shardcrawl.temporal.local_processes import LocalProcesses

    spec = spec_from_args(args)
    config = Config.load()
    embedded = "TEMPORAL_ADDRESS" not in os.environ
    crawl_id = args.crawl_id or new_crawl_id()
    log_dir = Path(".shardcrawl", "logs", layout.crawl_folder(crawl_id)).resolve()
    local = LocalProcesses(config, workers=args.workers, embedded=embedded, worker_log_dir=log_dir)
    try:
        config = local.start()
        if local.server is not None:
            console.print(
                f"Temporal UI, crawls only: {crawls_view_url(local.server.ui_url)}",
                highlight=False,
                markup=False,
            )
        client = await CrawlClient.connect(config)
        return await start_and_follow(client, spec, crawl_id, verbose=args.verbose)
    except CrawlNotCompleted:
        # The workers' own words stay out of the terminal unless asked for: the cause is in
        # the message that follows; the logs are a path away.
        if args.worker_logs:
            err_console.print(local.worker_logs()[-2000:], highlight=False, markup=False)
        err_console.print(f"worker logs: {log_dir}", highlight=False, markup=False)
        raise
    finally:
        local.stop()


async def cmd_start(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    client = await CrawlClient.connect(Config.load())
    handle = await client.start(spec, crawl_id=args.crawl_id)
    print(handle.crawl_id)
    return EXIT_OK


async def cmd_status(args: argparse.Namespace) -> int:
    handle = (await CrawlClient.connect(Config.load())).get(args.crawl_id)
    if args.watch and not args.json:
        await watch_crawl(handle, verbose=args.verbose)
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
    report = await show_final(handle)
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
        await until_closed(handle)
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
