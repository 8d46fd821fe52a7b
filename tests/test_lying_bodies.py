"""Bodies that lie: a compressed body that expands far past ``max_response_bytes`` (gzip,
deflate, brotli) is cut off as ``oversize`` while it decompresses, so a worker's memory stays
bounded; a server that drips a byte a second is cut off by the download timeout."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import brotli

from tests.helpers import start_crawl

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


class LyingSite:
    def __init__(self, ip: str) -> None:
        bombs = _bombs()
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.requests.append(self.path)
                if self.path == "/":
                    links = "".join(f'<a href="{p}">x</a>' for p in [*bombs, "/drip"])
                    return self._send(b"<title>liar</title>" + links.encode(), {})
                if self.path in bombs:
                    encoding, body = bombs[self.path]
                    return self._send(body, {"Content-Encoding": encoding})
                if self.path == "/drip":
                    return self._drip()
                self.send_error(404)

            def _send(self, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _drip(self) -> None:
                """A byte a second for at most 30 s: only the download timeout ends it sooner."""
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", "30")
                    self.end_headers()
                    for _ in range(30):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(1)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer((ip, 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://{ip}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
