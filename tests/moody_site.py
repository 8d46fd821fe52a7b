"""Misbehaving hosts on loopback for the crawl-discipline tests, served by an asyncio server in
its own process (so its timestamps do not wait on the test's threads), logging every request
(arrival, end, status, links served) as JSON lines.

- home: ``/`` links every page below; ``/h/{i}`` link the next two and ``/``; ``/gone/404`` and
  ``/gone/410`` answer 404 and 410.
- flaky: ``/flaky/{i}`` answers 503 twice, then 200.
- throttle: the first request answers 429 with ``Retry-After: 3``, then 200 for ever; every
  answer takes 0.2 s, so requests sent together with the 429's arrive while it is still open.
- blocker: every request answers 403 with a captcha page.
- down: nothing listens (its port is bound, never listened on): connections are refused.

``python -m tests.moody_site LOG NAME=IP:PORT...`` runs the server; ``MoodySite`` starts it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from shardcrawl.core.ports import free_port
from tests.helpers import start_ready

HOME_PAGES = 12
FLAKY_PAGES = 3
THROTTLED_PAGES = 10  # more than a batch: the hold must cover the batches after it
BLOCKED_PAGES = 8
DOWN_PAGES = 2
RETRY_AFTER_SECONDS = 3
THROTTLE_ANSWER_SECONDS = 0.2


class Answers:
    """What each host answers, and how often each path was asked."""

    def __init__(self, origins: dict[str, str]) -> None:
        self.origins = origins
        self.counts: Counter[str] = Counter()

    def home_links(self) -> list[str]:
        return home_links(self.origins)

    def answer(self, host: str, path: str) -> tuple[int, dict[str, str], bytes, int]:
        if path == "/robots.txt":
            return 404, {}, b"", 0
        self.counts[f"{host}{path}"] += 1
        self.counts[host] += 1
        if host == "home":
            if path == "/":
                return _page(self.home_links())
            if path.startswith("/gone/"):
                return int(path.rsplit("/", 1)[1]), {}, b"<title>gone</title>", 0
            i = int(path.rsplit("/", 1)[1])
            return _page([f"/h/{(i + 1) % HOME_PAGES}", f"/h/{(i + 2) % HOME_PAGES}", "/"])
        if host == "flaky":
            if self.counts[f"{host}{path}"] <= 2:
                return 503, {}, b"<title>try later</title>", 0
            return _page([])
        if host == "throttle":
            if self.counts[host] == 1:
                return 429, {"Retry-After": str(RETRY_AFTER_SECONDS)}, b"<title>slow</title>", 0
            return _page([])
        if host == "blocker":
            return 403, {}, b"<title>Attention</title><p>Please solve this CAPTCHA</p>", 0
        return 404, {}, b"", 0


def home_links(origins: dict[str, str]) -> list[str]:
    links = [f"/h/{i}" for i in range(HOME_PAGES)] + ["/gone/404", "/gone/410"]
    links += [f"{origins['flaky']}/flaky/{i}" for i in range(FLAKY_PAGES)]
    links += [f"{origins['throttle']}/t/{i}" for i in range(THROTTLED_PAGES)]
    links += [f"{origins['blocker']}/b/{i}" for i in range(BLOCKED_PAGES)]
    links += [f"{origins['down']}/d/{i}" for i in range(DOWN_PAGES)]
    return links


def _page(hrefs: list[str]) -> tuple[int, dict[str, str], bytes, int]:
    body = "<title>page</title>" + "".join(f'<a href="{h}">x</a>' for h in hrefs)
    return 200, {}, body.encode(), len(hrefs)


async def _serve(log_path: str, hosts: dict[str, tuple[str, int]], origins: dict[str, str]) -> None:
    answers = Answers(origins)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the server's life

    def handler(name: str):  # noqa: ANN202
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            arrived = time.time()
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                writer.close()
                return
            path = head.split(b" ", 2)[1].decode("latin-1")
            status, headers, body, links = answers.answer(name, path)
            if name == "throttle":
                await asyncio.sleep(THROTTLE_ANSWER_SECONDS)
            lines = [f"HTTP/1.0 {status} X", "Content-Type: text/html"]
            lines += [f"Content-Length: {len(body)}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            try:
                await writer.drain()
            finally:
                writer.close()
            entry = {"host": name, "path": path, "status": status, "start": arrived}
            log.write(json.dumps({**entry, "end": time.time(), "links": links}) + "\n")

        return handle

    servers = [
        await asyncio.start_server(handler(name), ip, port) for name, (ip, port) in hosts.items()
    ]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


class MoodySite:
    """Starts the server process; the down host's port stays bound, never listened on."""

    def __init__(self, ips: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._down = socket.socket()
        self._down.bind((ips["down"], 0))
        self.origins = {"down": f"http://{ips['down']}:{self._down.getsockname()[1]}"}
        args = [str(log_path)]
        for name, ip in ips.items():
            if name != "down":
                port = free_port(ip)
                self.origins[name] = f"http://{ip}:{port}"
                args.append(f"{name}={ip}:{port}")
        args.append(f"down={self.origins['down'].removeprefix('http://')}")
        try:
            self.process = start_ready("tests.moody_site", args, what="the moody site")
        except RuntimeError:
            self._down.close()
            raise

    @property
    def seed(self) -> str:
        return f"{self.origins['home']}/"

    def home_links(self) -> list[str]:
        return home_links(self.origins)

    def requests(self, host: str | None = None) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        entries = [json.loads(line) for line in self.log_path.read_text().splitlines() if line]
        return [
            e for e in entries if (host is None or e["host"] == host) and e["path"] != "/robots.txt"
        ]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._down.close()


def main(argv: list[str]) -> None:
    log_path, specs = argv[0], argv[1:]
    hosts: dict[str, tuple[str, int]] = {}
    origins: dict[str, str] = {}
    for spec in specs:
        name, _, address = spec.partition("=")
        ip, _, port = address.partition(":")
        origins[name] = f"http://{ip}:{port}"
        if name != "down":
            hosts[name] = (ip, int(port))
    asyncio.run(_serve(log_path, hosts, origins))


if __name__ == "__main__":
    main(sys.argv[1:])
