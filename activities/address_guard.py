"""Refuses a request before it connects anywhere the crawl may not reach.

A downloader middleware after ``HttpProxyMiddleware``, so it sees every request Scrapy is about
to send: the batch's, a robots.txt redirect's, and the proxy each goes through. It resolves the
target's host and the proxy's host once (``AddressPins``), judges every address, and holds the
pins until the crawler closes, so the connection goes to exactly the addresses judged here. A
refusal is ``ForbiddenAddress``, recorded as ``forbidden_address``: no connection was tried.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest

from shardcrawl.activities.address_pins import AddressPins, installed_pins, literal
from shardcrawl.core import urls

__all__ = ["ALLOW_PRIVATE_SETTING", "AddressGuardMiddleware", "ForbiddenAddress"]

ALLOW_PRIVATE_SETTING = "SHARDCRAWL_ALLOW_PRIVATE_NETWORKS"


class ForbiddenAddress(IgnoreRequest):
    """A request whose host or proxy resolves to an address the crawl may not reach."""


class AddressGuardMiddleware:
    def __init__(self, pins: AddressPins, *, allow_private_networks: bool) -> None:
        self._pins = pins
        self._allow_private = allow_private_networks
        self._held: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> AddressGuardMiddleware:
        from twisted.internet import reactor

        mw = cls(
            installed_pins(reactor),
            allow_private_networks=crawler.settings.getbool(ALLOW_PRIVATE_SETTING),
        )
        crawler.signals.connect(mw.on_closed, signal=signals.spider_closed)
        return mw

    async def process_request(self, request: Request, spider: Any = None) -> None:
        for host in _hosts(request):
            address = literal(host)
            if address is not None:
                addresses = [address]
            else:
                addresses = await self._pins.lookup(host)
                if host not in self._held:
                    self._held.add(host)
                    self._pins.hold(host)
            for address in addresses:
                if urls.is_forbidden_ip(address, allow_private_networks=self._allow_private):
                    raise ForbiddenAddress(f"{host} is {address}: refused before connecting")

    def on_closed(self, spider: Any = None) -> None:
        for host in self._held:
            self._pins.release(host)
        self._held.clear()


def _hosts(request: Request) -> list[str]:
    """The hosts the request makes us resolve: its own, and its proxy's."""
    hosts = [urls.hostname(request.url)]
    proxy = request.meta.get("proxy")
    if proxy:
        hosts.append(urlsplit(proxy if "://" in proxy else "http://" + proxy).hostname or "")
    return hosts
