"""A small misbehaving site for failure tests: redirects, loops, oversize, slow and binary
pages, and links to hosts that refuse connections or must never be contacted."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

from tests.thread_site import ThreadSite


class NastySite(ThreadSite):
    """Serves on ``ip``:port in a thread of the test process and logs request paths."""

    def __init__(self, ip: str, refused_origin: str) -> None:
        self.refused_origin = refused_origin
        super().__init__(ip)

    def route(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path
        if path == "/":
            links = [
                "/redirect/1",
                "/loop/0",
                "/big",
                "/slow",
                "/binary",
                f"{self.refused_origin}/nothing-listens",
                "http://169.254.169.254/latest/meta-data/",
                "javascript:void(0)",
                "mailto:someone@example.com",
            ]
            body = "<title>nasty</title>" + "".join(f'<a href="{u}">x</a>' for u in links)
            return self._send(h, 200, "text/html", body.encode())
        if path == "/redirect/1":
            return self._redirect(h, 301, "/redirect/2")
        if path == "/redirect/2":
            return self._redirect(h, 302, "/final")
        if path == "/final":
            return self._send(h, 200, "text/html", b"<title>final</title><p>arrived</p>")
        if path.startswith("/loop/"):
            n = int(path.rsplit("/", 1)[1])
            return self._redirect(h, 302, f"/loop/{n + 1}")
        if path == "/big":
            return self._send(h, 200, "text/html", b"<title>big</title>" + b"x" * 50_000)
        if path == "/slow":
            time.sleep(4)
            return self._send(h, 200, "text/html", b"<title>slow</title>")
        if path == "/binary":
            return self._send(h, 200, "application/octet-stream", b'\x00\x01<a href="/never">')
        return self._send(h, 404, "text/html", b"<title>not found</title>")

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, ctype: str, body: bytes) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _redirect(h: BaseHTTPRequestHandler, status: int, location: str) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
