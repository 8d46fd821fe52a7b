"""The command line's arguments: every command's parser, and the crawl spec its flags make."""

from __future__ import annotations

import argparse
from typing import Any

from shardcrawl.cli.export import FORMATS
from shardcrawl.cli.schedule import add_schedule_parser
from shardcrawl.cli.spec_file import load_spec_file
from shardcrawl.core.errors import SpecError
from shardcrawl.models import CrawlSpec
from shardcrawl.models.validation import parse_spec
from shardcrawl.store import normalize_store_url, open_store
from shardcrawl.temporal.config import Config, add_worker_arguments

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
