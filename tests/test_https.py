"""HTTPS sites crawl like HTTP ones (a self-signed certificate on loopback; Scrapy, like
browsers' crawlers, does not verify certificates by default)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import read_items, start_crawl


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.8")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Pages(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        pages = {"/": b'<title>home</title><a href="/a">a</a>', "/a": b"<title>a</title>"}
        body = pages.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


async def test_https_pages_are_crawled(client, workers, task_queue, tmp_path):
    cert, key = self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.8", 0), Pages)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"https://127.0.0.8:{server.server_address[1]}"
    workers.start(1)
    try:
        spec = {"seeds": [origin + "/"], "output": str(tmp_path), "allow_private_networks": True}
        handle = await start_crawl(client, spec, task_queue)
        report = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    titles = {r["url"]: r["items"][0]["title"] for r in read_items(tmp_path, handle.id)}
    assert titles == {origin + "/": "home", origin + "/a": "a"}
    assert report.failures == 0
