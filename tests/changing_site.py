"""A site that changes between two crawls, for the incremental recrawl tests: an asyncio server in
its own process that logs every request (path, status, conditional headers) as JSON lines.

The version it serves is read from a file on every request, so a test switches it by writing
``2`` there. Pages:

- ``/etag/{i}``: the same ETag and body in both versions; If-None-Match gets a 304.
- ``/lm/{i}``: the same Last-Modified (no ETag) and body; If-Modified-Since gets a 304.
- ``/changed/{i}``: a new ETag and body in version 2.
- ``/removed/{i}``: version 1 only (404 in version 2).
- ``/new/{i}``: version 2 only, linked from ``/`` then.
- ``/plain``: no validators, the same body in both versions.
- ``/``: links every page of its version (so its own body changes too).

``python -m tests.changing_site LOG VERSION_FILE IP:PORT`` runs it; ``ChangingSite`` starts it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from shardcrawl.core.ports import free_port
from tests.helpers import start_ready

COUNTS = {"etag": 3, "lm": 3, "changed": 3, "removed": 2, "new": 2}
LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"


def pages(version: int) -> list[str]:
    kinds = [
        k for k in COUNTS if not (k == "removed" and version == 2 or k == "new" and version == 1)
    ]
    return [f"/{kind}/{i}" for kind in kinds for i in range(COUNTS[kind])] + ["/plain"]


def answer(version: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    if path == "/":
        return 200, {}, "".join(f'<a href="{p}">{p}</a>' for p in pages(version))
    if path not in pages(version):
        return 404, {}, "<title>gone</title>"
    kind = path.split("/")[1]
    body = f"<title>{path}</title>"
    if kind == "etag" or kind == "removed":
        tag = f'"{path}"'
        return (
            (304, {"ETag": tag}, "")
            if headers.get("if-none-match") == tag
            else (200, {"ETag": tag}, body)
        )
    if kind == "lm":
        if headers.get("if-modified-since") == LAST_MODIFIED:
            return 304, {"Last-Modified": LAST_MODIFIED}, ""
        return 200, {"Last-Modified": LAST_MODIFIED}, body
    if kind == "changed":
        tag = f'"{path}-v{version}"'
        if headers.get("if-none-match") == tag:
            return 304, {"ETag": tag}, ""
        return 200, {"ETag": tag}, f"{body}<p>version {version}</p>"
    return 200, {}, body


async def _serve(log_path: str, version_file: str, ip: str, port: int) -> None:
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the server's life

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        first, *lines = head.split("\r\n")
        path = first.split(" ")[1]
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)
        }
        version = int(Path(version_file).read_text().strip() or 1)
        status, extra, body = (
            (404, {}, "") if path == "/robots.txt" else answer(version, path, headers)
        )
        out = [f"HTTP/1.0 {status} X", "Content-Type: text/html", f"Content-Length: {len(body)}"]
        out += [f"{k}: {v}" for k, v in extra.items()] + ["Connection: close"]
        writer.write(("\r\n".join(out) + "\r\n\r\n" + body).encode())
        try:
            await writer.drain()
        finally:
            writer.close()
        entry = {"path": path, "status": status, "version": version, "at": time.time()}
        entry["if_none_match"] = headers.get("if-none-match")
        entry["if_modified_since"] = headers.get("if-modified-since")
        log.write(json.dumps(entry) + "\n")

    server = await asyncio.start_server(handle, ip, port)
    print("ready", flush=True)
    await server.serve_forever()


class ChangingSite:
    def __init__(self, ip: str, tmp: Path) -> None:
        self.log_path = tmp / "changing.jsonl"
        self.version_file = tmp / "version"
        self.version_file.write_text("1")
        self.origin = f"http://{ip}:{free_port(ip)}"
        address = self.origin.removeprefix("http://")
        args = [str(self.log_path), str(self.version_file), address]
        self.process = start_ready("tests.changing_site", args, what="the changing site")

    def serve_version(self, version: int) -> None:
        self.version_file.write_text(str(version))

    def requests(self, version: int) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        entries = [json.loads(x) for x in self.log_path.read_text().splitlines() if x]
        return [e for e in entries if e["version"] == version and e["path"] != "/robots.txt"]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def main(argv: list[str]) -> None:
    log_path, version_file, address = argv
    ip, _, port = address.rpartition(":")
    asyncio.run(_serve(log_path, version_file, ip, int(port)))


if __name__ == "__main__":
    main(sys.argv[1:])
