"""A small shop on loopback for the request-model tests: listing pages with pagination, product
pages (some links to them are broken, 404), a review list behind a POST form, and a stock page
that spiders ask for more than once on purpose. Every request is logged (method, path, body) as
a JSON line, so tests count from the server's side.

``python -m tests.shop_site LOG HOST PORT`` serves it and prints ``ready``.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

LISTING_PAGES = 3
PRODUCTS_PER_PAGE = 4
REVIEWS_PER_PRODUCT = 2


def skus(page: int) -> list[str]:
    return [f"p{page}{i}" for i in range(PRODUCTS_PER_PAGE)]


def _listing(page: int) -> str:
    links = "".join(f'<a class="product" href="/product/{sku}">{sku}</a>' for sku in skus(page))
    links += f'<a class="product" href="/product/gone-{page}">gone</a>'
    if page < LISTING_PAGES:
        links += f'<a class="next" href="/list?page={page + 1}">next</a>'
    return f"<html><title>listing {page}</title><body>{links}</body></html>"


def _product(sku: str) -> str:
    return (
        f"<html><title>{sku}</title><body><h1>Product {sku.upper()}</h1>"
        f'<span class="price">{len(sku) * 7}.50</span><a href="/">home</a></body></html>'
    )


def _reviews(sku: str) -> str:
    items = "".join(f'<li class="review">{sku} review {i}</li>' for i in range(REVIEWS_PER_PRODUCT))
    return f"<html><title>reviews</title><body><ul>{items}</ul></body></html>"


class _Handler(BaseHTTPRequestHandler):
    server_version = "shop"
    log_lock = threading.Lock()
    log_file: object = None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None

    def _log(self, status: int, body: str) -> None:
        entry = {"method": self.command, "path": self.path, "body": body, "status": status}
        with self.log_lock:
            self.log_file.write(json.dumps(entry) + "\n")  # type: ignore[attr-defined]
            self.log_file.flush()  # type: ignore[attr-defined]

    def _send(self, status: int, html: str, body: str = "") -> None:
        self._log(status, body)
        data = html.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/":
            return self._send(200, _listing(1))
        if path == "/list":
            return self._send(200, _listing(int(query.get("page", ["1"])[0])))
        if path.startswith("/product/") and not path.startswith("/product/gone"):
            return self._send(200, _product(path.rsplit("/", 1)[1]))
        if path.startswith("/stock/"):
            sku = path.rsplit("/", 1)[1]
            return self._send(200, f"<html><title>stock</title><b>{len(sku)}</b></html>")
        return self._send(404, "<html><title>not found</title></html>")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        if self.path == "/reviews":
            return self._send(200, _reviews(parse_qs(body).get("product", [""])[0]), body)
        return self._send(404, "<html></html>", body)


def main() -> None:
    log, host, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    _Handler.log_file = log.open("a", encoding="utf-8")  # noqa: SIM115 (open for the server's life)
    server = ThreadingHTTPServer((host, port), _Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
