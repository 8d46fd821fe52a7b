"""A small HTTP site served from a thread of the test process, for tests whose pages are a
few lines of Python: a subclass answers ``route(handler)``; every request path is logged in
``requests``, in arrival order."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["ThreadSite"]


class ThreadSite:
    def __init__(self, ip: str, port: int = 0) -> None:
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.requests.append(self.path)
                site.route(self)

        self.server = ThreadingHTTPServer((ip, port), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://{ip}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ThreadSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
