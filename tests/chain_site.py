"""A host whose pages form a chain (``/c/{i}`` links ``/c/{i+1}``), so each page is found only
once the one before it is fetched, with permanently broken URLs hung off it: every
``BROKEN_EVERY``-th page also links ``/broken/{i}``, which answers 500 or (every other one)
drops the connection without an answer. Requests are logged as JSON lines.

``python -m tests.chain_site LOG HOST PORT PAGES BROKEN_EVERY`` (0: no broken URLs).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(BaseHTTPRequestHandler):
    pages = 0
    broken_every = 0
    log_file: object = None
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None

    def _log(self, status: int | None) -> None:
        with self.lock:
            entry = {"path": self.path, "status": status, "at": time.time()}
            self.log_file.write(json.dumps(entry) + "\n")  # type: ignore[attr-defined]
            self.log_file.flush()  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/broken/"):
            i = int(self.path.rsplit("/", 1)[1])
            if i % 2:
                self._log(None)
                self.close_connection = True
                self.connection.close()
                return
            return self._answer(500, "<html><title>broken</title></html>")
        if self.path == "/" or self.path.startswith("/c/"):
            i = 0 if self.path == "/" else int(self.path.rsplit("/", 1)[1])
            links = f'<a href="/c/{i + 1}">next</a>' if i + 1 < self.pages else ""
            if self.broken_every and i % self.broken_every == self.broken_every - 1:
                links += f'<a href="/broken/{i}">broken</a>'
            return self._answer(200, f"<html><title>{i}</title><body>{links}</body></html>")
        return self._answer(404, "")

    def _answer(self, status: int, html: str) -> None:
        self._log(status)
        data = html.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    log, host, port, pages, broken_every = sys.argv[1:6]
    _Handler.log_file = Path(log).open("a", encoding="utf-8")  # noqa: SIM115 (open for the server's life)
    _Handler.pages, _Handler.broken_every = int(pages), int(broken_every)
    server = ThreadingHTTPServer((host, int(port)), _Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
