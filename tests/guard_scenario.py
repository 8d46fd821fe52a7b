"""The network guard's crawl, run inside a namespace with only loopback (tests/netns.py):
``ip netns exec NS python -m tests.guard_scenario OUT`` prints one JSON line of what the
crawl recorded and what the servers saw.

Inside it, traps listen where the crawl must never connect: the metadata address
169.254.169.254 (on ``lo``), ``0.0.0.0`` and ``[::]``. One site links to them in every odd
spelling, by names, through a redirect, through a proxy and from its robots.txt; a DNS server
answers ``rebind.test`` first with the site's address, then with the metadata address. The
Temporal dev server and the worker run inside too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer
from temporalio.client import Client

from shardcrawl.core.ports import free_ports
from shardcrawl.temporal.devserver import DevServer
from shardcrawl.temporal.wire import data_converter
from tests.helpers import read_items, read_report, start_crawl
from tests.plugins.temporal import Workers
from tests.thread_site import ThreadSite

METADATA = "169.254.169.254"
SITE, PROXIED = "127.0.0.2", "127.0.0.3"
PORT, ZERO_PORT, V6_PORT = 8080, 8081, 8082
NAMESERVER = "127.0.0.53"
ADDRESSES = (f"{METADATA}/32",)
FORBIDDEN = [
    f"http://{METADATA}:{PORT}/plain",
    f"http://2852039166:{PORT}/decimal",
    f"http://0xA9FEA9FE:{PORT}/hex",
    f"http://0251.0376.0251.0376:{PORT}/octal",
    f"http://[::ffff:{METADATA}]:{PORT}/mapped",
    f"http://{METADATA}.:{PORT}/dot",
    f"http://0.0.0.0:{ZERO_PORT}/zero",
    f"http://[::]:{V6_PORT}/v6",
    f"http://meta.test:{PORT}/name",
    f"http://{SITE}:{PORT}/redirect",  # 302 to 0xA9FEA9FE: the target is refused
    f"http://{PROXIED}:{PORT}/viaproxy",  # through a proxy at the metadata address
]
REBIND = f"http://rebind.test:{PORT}/rebind"


class Trap:
    """A listener that counts the connections it accepts: any is a leak."""

    def __init__(self, family: socket.AddressFamily, address: str, port: int) -> None:
        self.accepted = 0
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.sock.bind((address, port))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


class Rebinding(BaseResolver):  # type: ignore[misc]
    """meta.test is the metadata address; rebind.test the site's first, then metadata's."""

    def __init__(self) -> None:
        self.queries: dict[str, int] = {}

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if request.q.qtype != QTYPE.A:
            return reply  # no AAAA: an empty answer
        self.queries[name] = self.queries.get(name, 0) + 1
        address = {"meta.test": METADATA}.get(name)
        if name == "rebind.test":
            address = SITE if self.queries[name] == 1 else METADATA
        if address is not None:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=0))
        return reply


class GuardSite(ThreadSite):
    def route(self, h: BaseHTTPRequestHandler) -> None:
        if h.path == "/robots.txt":
            return _send(h, 302, b"", {"Location": f"http://2852039166:{PORT}/robots.txt"})
        if h.path == "/":
            links = "".join(f'<a href="{u}">x</a>' for u in [*FORBIDDEN, REBIND])
            return _send(h, 200, links.encode(), {})
        if h.path == "/redirect":
            return _send(h, 302, b"", {"Location": f"http://0xA9FEA9FE:{PORT}/redirected"})
        if h.path == "/rebind":
            return _send(h, 200, b"<title>rebind</title>", {})
        h.send_error(404)


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
    h.send_response(status)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(body)


def spec(out: Path) -> dict[str, Any]:
    return {
        "seeds": [f"http://{SITE}:{PORT}/"],
        "allowed_domains": [SITE, PROXIED, METADATA, "0.0.0.0", "::", "meta.test", "rebind.test"],
        "output": str(out),
        "allow_private_networks": True,
        "proxies": {
            "pools": {"trap": {"proxies": [f"http://{METADATA}:{PORT}"]}},
            "routes": [{"domains": [PROXIED], "pool": "trap"}],
        },
    }


async def scenario(out: Path) -> dict[str, Any]:
    traps = {
        "metadata": Trap(socket.AF_INET, METADATA, PORT),
        "zero": Trap(socket.AF_INET, "0.0.0.0", ZERO_PORT),
        "v6": Trap(socket.AF_INET6, "::", V6_PORT),
    }
    dns = Rebinding()
    server = DNSServer(dns, address=NAMESERVER, port=53)
    server.start_thread()
    site, proxied = GuardSite(SITE, PORT), GuardSite(PROXIED, PORT)
    port, ui_port = free_ports(2)
    temporal = DevServer(port=port, ui_port=ui_port, db_file=out / "temporal.db", headless=True)
    logs = out / "logs"
    logs.mkdir()
    fleet = Workers(temporal.address, "guard", logs)
    try:
        temporal.start()
        fleet.start(1)
        client = await Client.connect(temporal.address, data_converter=data_converter)
        handle = await start_crawl(client, spec(out), "guard")
        await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        fleet.stop()
        temporal.stop()
        site.close()
        proxied.close()
        server.stop()
    return {
        "report": read_report(out, handle.id),
        "items": read_items(out, handle.id),
        "site": site.requests,
        "proxied": proxied.requests,
        "traps": {name: trap.accepted for name, trap in traps.items()},
        "dns": dns.queries,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(scenario(Path(sys.argv[1])))))
