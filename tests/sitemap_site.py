"""A site whose robots.txt names a sitemap index, for the sitemap tests; every request is
logged as a JSON line (path, time).

- ``/`` links ``/p/0`` to ``/p/2``; nothing links ``/orphan/N``.
- ``/robots.txt`` names ``/sm/index.xml`` (or, with ``big``, ``/sm/big.xml``).
- ``/sm/index.xml`` names ``/sm/a.xml`` (orphans 0-2), ``/sm/b.xml.gz`` (gzip, orphans 3-5),
  and broken ones: ``/sm/cut.xml`` (malformed, orphan 6 before the break), ``/sm/page.xml``
  (an HTML page), ``/sm/gone.xml`` (404), ``/sm/bomb.xml.gz`` (a gzip bomb) and itself (a loop).
- ``/sm/big.xml``: 50,000 URLs, ``/big/N``, with about 1 KB of image caption each (50 MB).

``python -m tests.sitemap_site LOG IP PORT [big]``
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
BIG = 50_000


def _urlset(paths: list[str], base: str) -> bytes:
    urls = "".join(f"<url><loc>{base}{p}</loc><lastmod>2026-11-30</lastmod></url>" for p in paths)
    return f'<?xml version="1.0"?><urlset xmlns="{NS}">{urls}</urlset>'.encode()


def _big(base: str) -> bytes:
    """An image sitemap: short URLs, each with a long caption (which the crawl skips)."""
    caption = "a long caption " * 64
    urls = "".join(
        f"<url><loc>{base}/big/{i}</loc><image:image><image:loc>{base}/img/{i}.jpg</image:loc>"
        f"<image:caption>{caption}</image:caption></image:image></url>"
        for i in range(BIG)
    )
    image = "http://www.google.com/schemas/sitemap-image/1.1"
    return (
        f'<?xml version="1.0"?><urlset xmlns="{NS}" xmlns:image="{image}">{urls}</urlset>'.encode()
    )


class _Handler(BaseHTTPRequestHandler):
    log_file: object = None
    lock = threading.Lock()
    big = False
    cache: dict[str, bytes] = {}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None

    def do_GET(self) -> None:  # noqa: N802
        with self.lock:
            entry = {"path": self.path, "at": time.time()}
            self.log_file.write(json.dumps(entry) + "\n")  # type: ignore[attr-defined]
            self.log_file.flush()  # type: ignore[attr-defined]
        base = f"http://{self.headers['Host']}"
        path = self.path
        index = "/sm/big.xml" if self.big else "/sm/index.xml"
        children = ["a.xml", "b.xml.gz", "cut.xml", "page.xml", "gone.xml", "bomb.xml.gz"]
        if path == "/robots.txt":
            return self._send(
                f"User-agent: *\nAllow: /\nSitemap: {base}{index}\n".encode(), "text/plain"
            )
        if path == "/sm/index.xml":
            locs = "".join(f"<sitemap><loc>{base}/sm/{c}</loc></sitemap>" for c in children)
            locs += f"<sitemap><loc>{base}/sm/index.xml</loc></sitemap>"
            body = f'<?xml version="1.0"?><sitemapindex xmlns="{NS}">{locs}</sitemapindex>'
            return self._send(body.encode(), "application/xml")
        if path == "/sm/a.xml":
            return self._send(_urlset([f"/orphan/{i}" for i in range(3)], base), "application/xml")
        if path == "/sm/b.xml.gz":
            body = gzip.compress(_urlset([f"/orphan/{i}" for i in range(3, 6)], base))
            return self._send(body, "application/gzip")
        if path == "/sm/cut.xml":
            return self._send(_urlset(["/orphan/6"], base)[:-9] + b"<url><lo", "application/xml")
        if path == "/sm/page.xml":
            return self._send(b"<!DOCTYPE html><html><body>not here</body></html>", "text/html")
        if path == "/sm/bomb.xml.gz":
            if "bomb" not in self.cache:
                opening = f'<urlset xmlns="{NS}">'.encode()
                self.cache["bomb"] = gzip.compress(opening + b" " * (100 << 20), compresslevel=9)
            return self._send(self.cache["bomb"], "application/gzip")
        if path == "/sm/big.xml":
            if "big" not in self.cache:
                self.cache["big"] = _big(base)
            return self._send(self.cache["big"], "application/xml")
        if path == "/":
            links = "".join(f'<a href="/p/{i}">p{i}</a>' for i in range(3))
            return self._send(f"<html><body>{links}</body></html>".encode(), "text/html")
        if path.startswith(("/p/", "/orphan/", "/big/")):
            return self._send(b"<html><title>page</title><body>ok</body></html>", "text/html")
        self._send(b"", "text/plain", status=404)

    def _send(self, body: bytes, content_type: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    log, ip, port, *flags = sys.argv[1:]
    _Handler.log_file = Path(log).open("a", encoding="utf-8")  # noqa: SIM115 (open for the server's life)
    _Handler.big = "big" in flags
    server = ThreadingHTTPServer((ip, int(port)), _Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
