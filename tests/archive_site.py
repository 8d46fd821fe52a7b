"""A site for the WARC tests, on two hosts, that keeps exactly what it sent for every path
(status, headers, body as written to the socket, before any chunking), so a test can compare
the archive with the server's side of each exchange.

Pages on the first host: ``/`` links everything; ``/gzip`` is gzip-encoded HTML; ``/redirect``
is a 302 to ``/final``; ``/binary`` is every byte value; ``/chunked`` is HTML sent in chunks;
``/big`` declares a Content-Length past the crawl's limit; ``/chunked-big`` streams past it
with no length; ``/flaky`` answers 503 the first time. The second host has ``/`` and ``/other``.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler
from typing import NamedTuple

from tests.thread_site import ThreadSite

LIMIT = 1024
"""The max_response_bytes the tests crawl with."""
BINARY = bytes(range(256))
GZIP_HTML = b"<title>gzip</title>" + b"<p>compressed words</p>" * 20
CHUNKED_HTML = b"<title>chunked</title>" + b"<p>chunk</p>" * 30
BIG = b"<title>big</title>" + b"b" * 5000
CHUNKED_BIG = b"<title>streamed</title>" + b"s" * 8000


class Sent(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    """The message body as sent (gzip stays gzip), without transfer chunking."""


class ArchiveSite(ThreadSite):
    def __init__(self, ip: str, other_ip: str) -> None:
        self.sent: dict[str, Sent] = {}
        """The last answer to each URL."""
        self.flaky_asked = 0
        self._lock = threading.Lock()
        self.other = _OtherHost(other_ip, self)
        super().__init__(ip)

    def route(self, h: BaseHTTPRequestHandler) -> None:
        h.protocol_version = "HTTP/1.1"
        path = h.path
        if path == "/":
            links = ["/gzip", "/redirect", "/binary", "/chunked", "/big", "/chunked-big", "/flaky"]
            links.append(self.other.origin + "/")
            body = b"<title>home</title>" + b"".join(
                f'<a href="{link}">{link}</a>'.encode() for link in links
            )
            return self.send(h, 200, {"Content-Type": "text/html"}, body)
        if path == "/gzip":
            headers = {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"}
            return self.send(h, 200, headers, gzip.compress(GZIP_HTML, mtime=0))
        if path == "/redirect":
            return self.send(h, 302, {"Location": "/final"}, b"")
        if path == "/final":
            return self.send(h, 200, {"Content-Type": "text/html"}, b"<title>final</title>")
        if path == "/binary":
            return self.send(h, 200, {"Content-Type": "application/octet-stream"}, BINARY)
        if path == "/chunked":
            return self.send(h, 200, {"Content-Type": "text/html"}, CHUNKED_HTML, chunk=100)
        if path == "/big":
            return self.send(h, 200, {"Content-Type": "text/html"}, BIG)
        if path == "/flaky":
            # A 503 first, which the shard retries: only the last attempt is archived.
            self.flaky_asked += 1
            if self.flaky_asked == 1:
                return self.send(h, 503, {"Content-Type": "text/plain"}, b"try again")
            return self.send(h, 200, {"Content-Type": "text/plain"}, b"fine now")
        if path == "/chunked-big":
            return self.send(h, 200, {"Content-Type": "text/html"}, CHUNKED_BIG, chunk=500)
        return self.send(h, 404, {"Content-Type": "text/html"}, b"<title>not found</title>")

    def send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        headers: dict[str, str],
        body: bytes,
        *,
        chunk: int = 0,
        host: str = "",
    ) -> None:
        headers = dict(headers)
        if chunk:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(len(body))
        with self._lock:
            self.sent[(host or self.origin) + h.path] = Sent(status, headers, body)
        try:
            h.send_response(status)
            for name, value in headers.items():
                h.send_header(name, value)
            h.end_headers()
            if not chunk:
                h.wfile.write(body)
                return
            for start in range(0, len(body), chunk):
                piece = body[start : start + chunk]
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    def close(self) -> None:
        self.other.close()
        super().close()


class _OtherHost(ThreadSite):
    def __init__(self, ip: str, main: ArchiveSite) -> None:
        self.main = main
        super().__init__(ip)

    def route(self, h: BaseHTTPRequestHandler) -> None:
        h.protocol_version = "HTTP/1.1"
        if h.path == "/":
            body = b'<title>other</title><a href="/other">other</a>'
        elif h.path == "/other":
            body = b"<title>other page</title>"
        else:
            return self.main.send(h, 404, {}, b"", host=self.origin)
        self.main.send(h, 200, {"Content-Type": "text/html"}, body, host=self.origin)
