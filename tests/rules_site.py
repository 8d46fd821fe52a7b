"""A site for URL rules, quotas and crawl order, the same on every address it serves, with
every request logged as a JSON line (host, path with query, time).

- ``/`` links the sections below.
- ``/blog/N`` (N < 4) link each other, ``/blog/N?print=1`` and ``/blog/drafts/N``; ``/about``.
- ``/s/N`` (N < 5) link every ``/s/M`` with a fresh ``?sid=`` each time (a session id).
- ``/q/N`` (N < 30) link ``/q/N+1`` to ``/q/N+3``: more pages than a quota.
- ``/t`` is a tree, three children a node, two levels deep (``/t/1``, ``/t/1/2``).
- ``/p`` links ``/p/N`` (N < 6) with ``data-priority`` N.

``python -m tests.rules_site LOG PORT IP [IP ...]``
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BLOG, SESSIONS, QUOTA_PAGES, PRIORITIES = 4, 5, 30, 6
_sids = itertools.count()


def _links(path: str) -> list[tuple[str, int]]:
    """The page's links (href, data-priority); none for a page that is not listed above."""
    parts = path.split("?")[0].strip("/").split("/")
    if path == "/":
        return [("/blog/0", 0), ("/about", 0), ("/s/0", 0), ("/q/0", 0), ("/t", 0), ("/p", 0)]
    if parts[0] == "blog" and len(parts) == 2:
        return [(f"/blog/{n}", 0) for n in range(BLOG)] + [
            (f"{path}?print=1", 0),
            (f"/blog/drafts/{parts[1]}", 0),
        ]
    if parts[0] == "s":
        return [(f"/s/{n}?sid={next(_sids)}", 0) for n in range(SESSIONS)]
    if parts[0] == "q":
        n = int(parts[1])
        return [(f"/q/{m}", 0) for m in range(n + 1, min(n + 4, QUOTA_PAGES))]
    if parts[0] == "t":
        return [(f"{path.rstrip('/')}/{k}", 0) for k in range(3)] if len(parts) < 3 else []
    if parts == ["p"]:
        return [(f"/p/{n}", n) for n in range(PRIORITIES)]
    return []


class _Handler(BaseHTTPRequestHandler):
    log_file: object = None
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None

    def do_GET(self) -> None:  # noqa: N802
        with self.lock:
            entry = {"host": self.headers.get("Host"), "path": self.path, "at": time.time()}
            self.log_file.write(json.dumps(entry) + "\n")  # type: ignore[attr-defined]
            self.log_file.flush()  # type: ignore[attr-defined]
        if self.path == "/robots.txt":
            return self._answer(404, "")
        anchors = "".join(
            f'<a href="{href}" data-priority="{priority}">{href}</a>'
            for href, priority in _links(self.path)
        )
        self._answer(200, f"<html><title>{self.path}</title><body>{anchors}</body></html>")

    def _answer(self, status: int, html: str) -> None:
        data = html.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    log, port, *ips = sys.argv[1:]
    _Handler.log_file = Path(log).open("a", encoding="utf-8")  # noqa: SIM115 (open for the server's life)
    servers = [ThreadingHTTPServer((ip, int(port)), _Handler) for ip in ips]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
