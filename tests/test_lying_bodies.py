"""Bodies that lie: a compressed body that expands far past ``max_response_bytes`` (gzip,
deflate, brotli) is cut off as ``oversize`` while it decompresses, so a worker's memory stays
bounded; a server that drips a byte a second is cut off by the download timeout."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import brotli

from tests.helpers import start_crawl
from tests.thread_site import ThreadSite

MAX_RESPONSE_BYTES = 1 << 20
DOWNLOAD_TIMEOUT = 3.0
BOMB_BYTES = 256 << 20  # what each bomb expands to


def _bombs() -> dict[str, tuple[str, bytes]]:
    zeros = b"\0" * (8 << 20)
    member = gzip.compress(zeros, compresslevel=6)
    deflate = zlib.compressobj(1)
    deflated = b"".join(deflate.compress(zeros) for _ in range(BOMB_BYTES // len(zeros)))
    return {
        # gzip members concatenate: 32 copies of 8 MB of zeros, for the price of one.
        "/gzip": ("gzip", member * (BOMB_BYTES // len(zeros))),
        "/deflate": ("deflate", deflated + deflate.flush()),
        "/br": ("br", brotli.compress(b"\0" * BOMB_BYTES, quality=1)),
    }


class LyingSite(ThreadSite):
    def __init__(self, ip: str) -> None:
        self.bombs = _bombs()
        super().__init__(ip)

    def route(self, h: BaseHTTPRequestHandler) -> None:
        if h.path == "/":
            links = "".join(f'<a href="{p}">x</a>' for p in [*self.bombs, "/drip"])
            return _send(h, b"<title>liar</title>" + links.encode(), {})
        if h.path in self.bombs:
            encoding, body = self.bombs[h.path]
            return _send(h, body, {"Content-Encoding": encoding})
        if h.path == "/drip":
            return _drip(h)
        h.send_error(404)


def _send(h: BaseHTTPRequestHandler, body: bytes, headers: dict[str, str]) -> None:
    try:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _drip(h: BaseHTTPRequestHandler) -> None:
    """A byte a second for at most 30 s: only the download timeout ends it sooner."""
    try:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", "30")
        h.end_headers()
        for _ in range(30):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(1)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def test_bombs_are_oversize_and_drips_time_out(client, workers, task_queue, tmp_path):
    site = LyingSite("127.0.0.32")
    (worker,) = workers.start(1)
    try:
        spec = {
            "seeds": [site.origin + "/"],
            "output": str(tmp_path / "out"),
            "allow_private_networks": True,
            "max_response_bytes": MAX_RESPONSE_BYTES,
            "download_timeout_seconds": DOWNLOAD_TIMEOUT,
            "retry": {"max_attempts": 1},
        }
        started = time.monotonic()
        handle = await start_crawl(client, spec, task_queue)
        report = await asyncio.wait_for(handle.result(), timeout=120)
        elapsed = time.monotonic() - started
        peak = _peak_rss_bytes(worker.pid)
    finally:
        site.close()
    assert sorted(site.requests) == ["/", "/br", "/deflate", "/drip", "/gzip", "/robots.txt"]
    assert report.failure_classes == {"oversize": 3, "timeout": 1}, report.failure_classes
    assert elapsed < 25, "the drip was not cut off by the download timeout"
    assert peak < BOMB_BYTES, f"a worker's memory peaked at {peak / 1e6:.0f} MB"
