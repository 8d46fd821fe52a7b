"""Fast multi-host HTTP/1.1 server for the generated test site.

Raw asyncio streams with keep-alive (no framework) so that the server is never
the bottleneck of a crawl benchmark. Every request is logged server-side as a
JSON line, which is how tests observe politeness and concurrency.

Usage::

    python -m shardcrawl.testing.sites.server --hosts 127.0.0.2:8001,localhost:8001 \\
        --pages-per-host 50 --seed 1 --delay-ms 20 --log /tmp/access.jsonl \\
        [--links-per-page 5] [--cross-host-ratio 0.3] [--no-variants] \\
        [--no-extras] [--parent-pid PID]

``--hosts-file PATH`` (one host, or a comma-separated list, per line) instead of ``--hosts``
for thousands of hosts, whose list is longer than one command-line argument may be. Each host
is one listening socket: the soft limit of open files is raised to the hard limit.

Prints ``READY`` once every socket listens; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import time
from typing import IO

from shardcrawl.testing.sites.graph import SiteConfig
from shardcrawl.testing.sites.rendering import render

__all__ = ["main", "serve", "bind_address", "parse_args"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
}
_FLUSH_EVERY = 0.1


def bind_address(host: str) -> tuple[str, int]:
    """IP and port to bind for a config host; ``localhost`` binds 127.0.0.1."""
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit():
        raise ValueError(f"host must look like 127.0.0.2:8001, got {host!r}")
    return ("127.0.0.1" if name.lower() == "localhost" else name), int(port)


class _AccessLog:
    """Buffered JSON-lines access log, flushed periodically and on exit."""

    def __init__(self, fh: IO[str] | None) -> None:
        self.fh = fh
        self.buf: list[str] = []

    def add(self, host: str, target: str, status: int, start: float, end: float) -> None:
        if self.fh is not None:
            self.buf.append(
                json.dumps(
                    {"host": host, "path": target, "status": status, "start": start, "end": end}
                )
            )

    def flush(self) -> None:
        if self.fh is not None and self.buf:
            self.fh.write("\n".join(self.buf) + "\n")
            self.buf.clear()
            self.fh.flush()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY)
            self.flush()


def _response(
    status: int, ctype: str, body: bytes, head: bool, close: bool, extra: str = ""
) -> bytes:
    header = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n{extra}"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return header.encode("latin-1") + (b"" if head else body)


def _handler(config: SiteConfig, host: str, log: _AccessLog):
    """Connection handler bound to one listening host (identity = socket)."""
    delay = config.delay_ms / 1000

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                except asyncio.LimitOverrunError:
                    writer.write(_response(431, "text/plain", b"", False, True))
                    await writer.drain()
                    return
                start = time.time()
                lines = raw.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    writer.write(_response(400, "text/plain", b"bad request\n", False, True))
                    await writer.drain()
                    return
                method, target, version = parts
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip().lower()
                conn = headers.get("connection", "")
                close = "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn)
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                if delay:
                    await asyncio.sleep(delay)
                if method in ("GET", "HEAD"):
                    status, ctype, body = render(config, host, target)
                    out = _response(status, ctype, body, method == "HEAD", close)
                else:
                    status = 405
                    out = _response(405, "text/plain", b"", False, close, "Allow: GET, HEAD\r\n")
                writer.write(out)
                await writer.drain()
                log.add(host, target, status, start, time.time())
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    return handle


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    """Exit when the launching process dies, so no server outlives its test."""
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stop.set()
            return
        except PermissionError:
            pass
        await asyncio.sleep(1.0)


async def serve(config: SiteConfig, log_path: str | None, parent_pid: int | None = None) -> None:
    """Bind every host, print READY, serve until SIGTERM/SIGINT."""
    fh = open(log_path, "w", encoding="utf-8") if log_path else None  # noqa: SIM115
    log = _AccessLog(fh)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = []
    try:
        for host in config.hosts:
            ip, port = bind_address(host)
            servers.append(
                await asyncio.start_server(
                    _handler(config, host, log), ip, port, reuse_address=True, backlog=1024
                )
            )
        tasks = [asyncio.create_task(log.run())]
        if parent_pid:
            tasks.append(asyncio.create_task(_watch_parent(parent_pid, stop)))
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        await stop.wait()
        for task in tasks:
            task.cancel()
    finally:
        for server in servers:
            server.close()
        log.flush()
        if fh is not None:
            fh.close()


def parse_args(argv: list[str] | None = None) -> tuple[SiteConfig, str | None, int | None]:
    """CLI -> (config, log path, parent pid)."""
    p = argparse.ArgumentParser(prog="python -m shardcrawl.testing.sites.server")
    hosts_arg = p.add_mutually_exclusive_group(required=True)
    hosts_arg.add_argument("--hosts", help="comma-separated host:port list")
    hosts_arg.add_argument("--hosts-file", help="file of host:port, one or a comma list a line")
    p.add_argument("--pages-per-host", type=int, required=True)
    p.add_argument("--links-per-page", type=int, default=5)
    p.add_argument("--cross-host-ratio", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--log", default=None, help="JSON-lines access log path")
    p.add_argument("--no-variants", action="store_true")
    p.add_argument("--no-extras", action="store_true")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    a = p.parse_args(argv)
    if a.hosts_file is not None:
        with open(a.hosts_file, encoding="utf-8") as fh:
            listed = fh.read().replace("\n", ",")
    else:
        listed = a.hosts
    hosts = tuple(h.strip() for h in listed.split(",") if h.strip())
    for h in hosts:
        bind_address(h)
    config = SiteConfig(
        hosts=hosts,
        pages_per_host=a.pages_per_host,
        links_per_page=a.links_per_page,
        cross_host_ratio=a.cross_host_ratio,
        seed=a.seed,
        variants=not a.no_variants,
        extras=not a.no_extras,
        delay_ms=a.delay_ms,
    )
    return config, a.log, a.parent_pid


def _raise_open_files_limit() -> None:
    """One socket per host, and one per connection: a site of thousands of hosts needs more
    than the usual soft limit of 1,024 open files. Raise it to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # If it cannot be raised, binding fails loudly when the soft limit is too low.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``python -m shardcrawl.testing.sites.server``."""
    config, log_path, parent_pid = parse_args(argv)
    _raise_open_files_limit()
    asyncio.run(serve(config, log_path, parent_pid))


if __name__ == "__main__":
    main()
