"""ProxyLab starts the proxy lab's server (tests/proxy_lab_server.py) and reads its request log."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shardcrawl.core.ports import free_port
from tests.helpers import start_ready
from tests.test_https import self_signed


def overlap_max(entries: Iterable[dict[str, Any]]) -> int:
    """Most ``[start, end]`` intervals open at one instant; at equal times ends go first, so
    back-to-back requests do not count as overlapping."""
    events = sorted(ev for e in entries for ev in ((e["start"], 1), (e["end"], -1)))
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


class ProxyLab:
    """Starts the lab process; each down proxy's port stays bound, never listened on."""

    def __init__(
        self,
        proxies: dict[str, str],
        sites: dict[str, tuple[str, int, int | None]],
        log_path: Path,
        *,
        auth: dict[str, tuple[str, str]] | None = None,
        down: dict[str, str] | None = None,
        flags: dict[str, str] | None = None,
    ) -> None:
        """``flags``: proxy name -> ``broken``, ``dead`` or ``tls``; site name -> ``tls``."""
        self.log_path = log_path
        flags = flags or {}
        self.auth = dict(auth or {})
        self.addresses: dict[str, str] = {}  # proxy name -> IP:PORT
        self.origins: dict[str, str] = {}  # site name -> http://IP:PORT
        self._down: list[socket.socket] = []
        for name, ip in (down or {}).items():
            self._down.append(socket.socket())
            self._down[-1].bind((ip, 0))
            self.addresses[name] = f"{ip}:{self._down[-1].getsockname()[1]}"
        cert, key = self_signed(log_path.parent)
        args = [str(log_path), str(cert), str(key)]
        self.schemes = {n: "https" if flags.get(n) == "tls" else "http" for n in [*proxies, *sites]}
        for name, ip in proxies.items():
            self.addresses[name] = f"{ip}:{free_port(ip)}"
            creds = ":".join(self.auth[name]) if name in self.auth else None
            flag = f"/{flags[name]}" if name in flags else ""
            args.append(
                f"proxy:{name}={self.addresses[name]}" + (f":{creds}" if creds else "") + flag
            )
        for name, (ip, pages, ban_after) in sites.items():
            port = free_port(ip)
            self.origins[name] = f"{self.schemes[name]}://{ip}:{port}"
            ban = "" if ban_after is None else f":{ban_after}"
            flag = f"/{flags[name]}" if name in flags else ""
            args.append(f"site:{name}={ip}:{port}:{pages}{ban}{flag}")
        try:
            self.process = start_ready("tests.proxy_lab_server", args, what="the proxy lab")
        except RuntimeError:
            self._close_down()
            raise

    def proxy_url(self, name: str, *, with_credentials: bool = False) -> str:
        scheme = self.schemes.get(name, "http")
        if with_credentials and name in self.auth:
            user, password = (quote(part, safe="") for part in self.auth[name])
            return f"{scheme}://{user}:{password}@{self.addresses[name]}"
        return f"{scheme}://{self.addresses[name]}"

    def origin(self, site: str) -> str:
        return self.origins[site]

    def entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Logged requests of that kind ("proxy" or "site"), robots.txt left out."""
        if not self.log_path.exists():
            return []
        entries = [json.loads(line) for line in self.log_path.read_text().splitlines() if line]
        return [
            e for e in entries if (kind is None or e["kind"] == kind) and e["path"] != "/robots.txt"
        ]

    def max_in_flight(self, proxy: str) -> int:
        """The most requests the proxy had in flight at once."""
        return overlap_max(e for e in self.entries("proxy") if e["proxy"] == proxy)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._close_down()

    def _close_down(self) -> None:
        for sock in self._down:
            sock.close()
