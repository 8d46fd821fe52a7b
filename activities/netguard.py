"""Refuses hosts that resolve to addresses the crawl may not reach (metadata, link-local and,
unless allowed, private and loopback ranges), before Scrapy connects to them."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

from shardcrawl import urls
from shardcrawl.contracts import FORBIDDEN_ADDRESS

__all__ = ["AddressGuard"]


class AddressGuard:
    """Resolves a host once a minute and judges every address it resolves to."""

    def __init__(self, *, ttl_seconds: float = 60.0) -> None:
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, list[str]]] = {}

    async def refusal(self, host: str, *, allow_private_networks: bool) -> str | None:
        """``FORBIDDEN_ADDRESS`` if any address of ``host`` is off limits, else None.

        A name that does not resolve passes: Scrapy then records the DNS failure per URL.
        """
        addresses = await self._resolve(host)
        for address in addresses:
            if urls.is_forbidden_ip(address, allow_private_networks=allow_private_networks):
                return FORBIDDEN_ADDRESS
        return None

    async def _resolve(self, host: str) -> list[str]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [host]
        cached = self._cache.get(host)
        now = time.monotonic()
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            return []
        addresses = sorted({str(info[4][0]) for info in infos})
        self._cache[host] = (now, addresses)
        return addresses
