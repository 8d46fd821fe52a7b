"""HTTP forward proxies and the sites behind them on loopback, for the proxy tests, served by one
asyncio process (so proxy and site timestamps are comparable), logging every request as JSON lines.

- proxy: a real HTTP/1.1 forward proxy (absolute-form requests of any method, kept-alive client
  connections, ``CONNECT`` tunnels). It dials upstream from its own IP, so a site sees which proxy
  a request came through. Given ``USER:PASS`` it answers 407 unless Basic
  ``Proxy-Authorization`` matches; an unreachable upstream answers 502 with
  ``Proxy-Status: lab; error=destination_unavailable`` (RFC 9209), as a proxy's own error does.
  Its flag ``broken`` makes it answer every request so (its upstream link is down); ``dead``
  makes it close every connection at once, logging each (``kind`` "dead"); ``tls`` makes it an
  ``https://`` proxy (TLS from the client to it).
- site: ``/`` links ``/p/0`` .. ``/p/{PAGES-1}``, ``/p/{i}`` links the next page and ``/``,
  served over TLS when given the flag ``tls``,
  ``/robots.txt`` answers 404; every answer takes ANSWER_SECONDS, so concurrency shows in the log.
  With ``ban_after=N`` the first client IP to make N page requests gets a 403 captcha page for
  every later one (robots.txt aside); other IPs are still served.
- down proxy: nothing listens (its port is bound, never listened on): connections are refused.

A request is in flight from the end of its head until its last byte is handed to the socket
(through a ``CONNECT`` tunnel: the last byte relayed from upstream, since the client has its
answer then, whenever the tunnel's sockets close).

``python -m tests.proxy_lab_server LOG CERT KEY proxy:NAME=IP:PORT[:USER:PASS][/FLAG]...
site:NAME=IP:PORT:PAGES[:BAN][/tls]...`` runs the server (CERT and KEY, PEM files, for
``tls``); ``ProxyLab`` (tests/proxy_lab.py) starts it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import ssl
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

ANSWER_SECONDS = 0.05
CAPTCHA = b"<title>Attention</title><p>Please solve this CAPTCHA</p>"
# Per-connection headers a proxy must not pass on (Content-Length is re-framed by hand).
HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te"}
HOP_HEADERS |= {"transfer-encoding", "upgrade", "trailer", "content-length", "host"}
Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Headers = list[tuple[str, str]]
Head = tuple[list[str], Headers]  # [method, target, version] or [version, status, reason]
Answer = tuple[int, bytes]  # status, every byte to send
Step = Callable[[Head, Reader, Writer], Awaitable[bool]]


def _header(headers: Headers, name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _message(first: str, headers: Headers, body: bytes = b"") -> bytes:
    return "\r\n".join([first, *(f"{k}: {v}" for k, v in headers), "", ""]).encode("latin-1") + body


def _bad_gateway(keep: bool) -> bytes:
    """The proxy's own 502: it could not reach, or hear from, the upstream."""
    status = ("Proxy-Status", "lab; error=destination_unavailable")
    return _short(502, "Bad Gateway", keep, status)


def _short(status: int, reason: str, keep: bool, *extra: tuple[str, str]) -> bytes:
    headers = [*extra, ("Content-Length", "0"), ("Connection", "keep-alive" if keep else "close")]
    return _message(f"HTTP/1.1 {status} {reason}", headers)


def _parse_head(head: bytes) -> tuple[list[str], Headers]:
    """([3 words of the first line], headers) of a request or response head."""
    lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    pairs = (line.partition(":") for line in lines[1:] if line)
    return (lines[0].split(" ", 2) + ["", ""])[:3], [(k.strip(), v.strip()) for k, _, v in pairs]


async def _read_body(reader: Reader, headers: Headers) -> bytes:
    length = int(_header(headers, "content-length") or 0)
    return await reader.readexactly(length) if length else b""


def _split_target(method: str, target: str) -> tuple[str, int, str] | None:
    """(host, port, path) of a CONNECT authority or an absolute-form http URL, else None."""
    if method == "CONNECT":
        host, _, number = target.rpartition(":")
        return (host, int(number), "") if host and number.isdigit() else None
    url = urlsplit(target)
    try:
        port = url.port or 80
    except ValueError:
        return None
    if url.scheme != "http" or not url.hostname:
        return None
    return url.hostname, port, (url.path or "/") + (f"?{url.query}" if url.query else "")


def _auth_ok(creds: str | None, headers: Headers) -> bool:
    if creds is None:
        return True
    scheme, _, token = (_header(headers, "proxy-authorization") or "").partition(" ")
    try:
        return scheme.lower() == "basic" and base64.b64decode(token).decode() == creds
    except (binascii.Error, UnicodeDecodeError):
        return False


async def _forward(
    ip: str, method: str, target: tuple[str, int, str], headers: Headers, body: bytes, keep: bool
) -> Answer:
    """One request sent upstream from the proxy's IP as HTTP/1.0 (so its answer ends at EOF),
    the whole answer re-framed with Content-Length so the client connection can stay open."""
    host, port, path = target
    try:
        up_reader, up_writer = await asyncio.open_connection(host, port, local_addr=(ip, 0))
    except OSError:
        return 502, _bad_gateway(keep)
    sent = [("Host", host if port == 80 else f"{host}:{port}")]
    sent += [(k, v) for k, v in headers if k.lower() not in HOP_HEADERS]
    sent += [("Content-Length", str(len(body)))] if body else []
    try:
        up_writer.write(
            _message(f"{method} {path} HTTP/1.0", [*sent, ("Connection", "close")], body)
        )
        raw = await up_reader.read()
    except OSError:
        raw = b""
    finally:
        up_writer.close()
    head, sep, rest = raw.partition(b"\r\n\r\n")
    (_, status, reason), got = _parse_head(head)
    if not sep or not status.isdigit():
        return 502, _bad_gateway(keep)
    length = _header(got, "content-length") or ""
    if method == "HEAD":  # no body, but the length of the one a GET would get
        rest, length = b"", length or "0"
    else:
        rest = rest[: int(length)] if length.isdigit() else rest
        length = str(len(rest))
    out = [(k, v) for k, v in got if k.lower() not in HOP_HEADERS]
    out += [("Content-Length", length), ("Connection", "keep-alive" if keep else "close")]
    return int(status), _message(f"HTTP/1.1 {status} {reason}", out, rest)


async def _tunnel(
    reader: Reader, writer: Writer, ip: str, host: str, port: int, relayed: list[float]
) -> Answer:
    """CONNECT: bytes piped both ways until both sides are done, dialled from the proxy's IP;
    ``relayed`` gets the time of the last byte handed on from upstream."""
    try:
        up_reader, up_writer = await asyncio.open_connection(host, port, local_addr=(ip, 0))
    except OSError:
        return 502, _bad_gateway(False)

    async def pipe(src: Reader, dst: Writer, times: list[float] | None = None) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                if times is not None:
                    times[:] = [time.time()]
                await dst.drain()
            dst.write_eof()
        except (OSError, RuntimeError):
            pass

    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer, relayed))
    up_writer.close()
    return 200, b""


class _Lab:
    """The process's shared state: the log, and whom each site has banned."""

    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the server's life
        self.asked: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.banned: dict[str, str] = {}

    def connection(self, step: Step) -> Callable[[Reader, Writer], Awaitable[None]]:
        """A server callback running ``step`` (one request) while it says to keep going."""

        async def handle(reader: Reader, writer: Writer) -> None:
            try:
                while head := await reader.readuntil(b"\r\n\r\n"):
                    if not await step(_parse_head(head), reader, writer):
                        break
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()

        return handle

    async def answer(
        self,
        entry: dict,
        writer: Writer,
        make: Awaitable[Answer],
        relayed: list[float] | None = None,
    ) -> None:
        """Logs the request from its arrival until its last byte is handed to ``write`` (no
        drain in between, so the client cannot send its next one first); for a tunnel, which
        has written everything itself, until the last byte it ``relayed`` from upstream."""
        entry = {**entry, "start": time.time()}
        status, out = await make
        if out:
            writer.write(out)
        end = relayed[-1] if relayed else time.time()
        self.log.write(json.dumps({**entry, "status": status, "end": end}) + "\n")
        await writer.drain()

    def page(self, site: str, client: str, path: str, pages: int, ban: int | None) -> bytes:
        """A site's answer, decided on arrival (so the ban has no race), sent after a wait."""
        route = path.partition("?")[0]
        if route == "/robots.txt":
            status, body = 404, b""
        elif self.banned.get(site) == client:
            status, body = 403, CAPTCHA
        else:
            self.asked[site][client] += 1
            if ban is not None and site not in self.banned and self.asked[site][client] >= ban:
                self.banned[site] = client
            i = int(route[3:]) if route[:3] == "/p/" and route[3:].isdigit() else -1
            if route == "/":
                status, hrefs = 200, [f"/p/{n}" for n in range(pages)]
            elif 0 <= i < pages:
                status, hrefs = 200, [f"/p/{(i + 1) % pages}", "/"]
            else:
                status, hrefs = 404, []
            body = b"<title>page</title>" + "".join(f'<a href="{h}">x</a>' for h in hrefs).encode()
        headers = [("Content-Type", "text/html"), ("Content-Length", str(len(body)))]
        return _message(f"HTTP/1.0 {status} X", [*headers, ("Connection", "close")], body)

    def site(self, name: str, pages: int, ban: int | None) -> Step:
        async def step(head: Head, reader: Reader, writer: Writer) -> bool:
            (_, path, _), headers = head
            client = writer.get_extra_info("peername")[0]

            async def make() -> Answer:
                await _read_body(reader, headers)
                out = self.page(name, client, path, pages, ban)
                await asyncio.sleep(ANSWER_SECONDS)
                return int(out.split(b" ", 2)[1]), out

            entry = {"kind": "site", "site": name, "client": client, "path": path}
            await self.answer(entry, writer, make())
            return False

        return step

    def dead(self, name: str) -> Callable[[Reader, Writer], Awaitable[None]]:
        """A proxy that takes each connection and drops it at once: each try is logged."""

        async def handle(reader: Reader, writer: Writer) -> None:
            now = time.time()
            entry = {"kind": "dead", "proxy": name, "path": "", "start": now, "end": now}
            self.log.write(json.dumps(entry) + "\n")
            writer.close()

        return handle

    def proxy(self, name: str, ip: str, creds: str | None, broken: bool) -> Step:
        async def step(head: Head, reader: Reader, writer: Writer) -> bool:
            (method, target, version), headers = head
            where, ok = _split_target(method, target), _auth_ok(creds, headers)
            wants = f"{_header(headers, 'connection')} {_header(headers, 'proxy-connection')}"
            keep = "close" not in wants.lower() and method != "CONNECT" and where is not None
            keep = keep and (version == "HTTP/1.1" or "keep-alive" in wants.lower())

            relayed: list[float] = []

            async def make() -> Answer:
                body = await _read_body(reader, headers)
                if not ok:
                    realm = ("Proxy-Authenticate", 'Basic realm="lab"')
                    return 407, _short(407, "Proxy Authentication Required", keep, realm)
                if where is None:
                    return 400, _short(400, "Bad Request", False)
                if broken:
                    return 502, _bad_gateway(keep)
                if method == "CONNECT":
                    return await _tunnel(reader, writer, ip, where[0], where[1], relayed)
                return await _forward(ip, method, where, headers, body, keep)

            entry = {"kind": "proxy", "proxy": name, "target": "", "path": "", "method": method}
            if where:
                entry.update(target=f"{where[0]}:{where[1]}", path=where[2])
            await self.answer({**entry, "auth_ok": ok}, writer, make(), relayed)
            return keep

        return step


async def _serve(log_path: str, tls: ssl.SSLContext, proxies: dict, sites: dict) -> None:
    lab = _Lab(log_path)
    servers = []
    for name, (ip, port, creds, flag) in proxies.items():
        handle = (
            lab.dead(name)
            if flag == "dead"
            else lab.connection(lab.proxy(name, ip, creds, flag == "broken"))
        )
        context = tls if flag == "tls" else None
        servers.append(await asyncio.start_server(handle, ip, port, ssl=context))
    for name, (ip, port, pages, ban, flag) in sites.items():
        handle = lab.connection(lab.site(name, pages, ban))
        context = tls if flag == "tls" else None
        servers.append(await asyncio.start_server(handle, ip, port, ssl=context))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str]) -> None:
    log_path, cert, key, specs = argv[0], argv[1], argv[2], argv[3:]
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    proxies: dict[str, tuple[str, int, str | None, str]] = {}
    sites: dict[str, tuple[str, int, int, int | None, str]] = {}
    for spec in specs:
        spec, _, flag = spec.partition("/")
        kind, _, rest = spec.partition(":")
        name, _, address = rest.partition("=")
        ip, port, *more = address.split(":")
        if kind == "proxy":
            proxies[name] = (ip, int(port), ":".join(more) or None, flag)
        elif kind == "site":
            ban = int(more[1]) if len(more) > 1 else None
            sites[name] = (ip, int(port), int(more[0]), ban, flag)
        else:
            raise SystemExit(f"not a proxy: or site: spec: {spec}")
    asyncio.run(_serve(log_path, tls, proxies, sites))


if __name__ == "__main__":
    main(sys.argv[1:])
