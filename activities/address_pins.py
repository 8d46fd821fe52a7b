"""Resolve once, connect to what was checked: the reactor's one resolver and its pins.

Every connection Twisted makes for Scrapy asks the reactor's name resolver for addresses (a
``HostnameEndpoint`` directly, a proxy tunnel's ``connectTCP`` through the simple resolver
Twisted wraps around it). ``GuardedResolver`` is that resolver, over ``AddressPins``: a host's
addresses, resolved once and then kept while a crawler that checked them still runs
(``hold``/``release``), so the address a crawler's ``AddressGuardMiddleware`` judged is the
one the connection goes to, even if the DNS answer changes in between. A name nobody pinned
is resolved here and judged strictly (no private or loopback addresses): no path connects to
an address nobody checked.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
)
from zope.interface import implementer

from shardcrawl.core import urls

__all__ = ["AddressPins", "GuardedResolver", "host_key", "install", "installed_pins", "literal"]


def host_key(host: str) -> str:
    """One spelling of a host for pins: the middleware and Twisted may write it differently
    (case, a trailing dot, brackets)."""
    return host.strip("[]").lower().rstrip(".") or host


def literal(host: str) -> str | None:
    """The address a host names by itself (``[::1]``, ``127.0.0.1.``), else None."""
    try:
        return str(ipaddress.ip_address(host_key(host).split("%", 1)[0]))
    except ValueError:
        return None


@dataclass
class _Pin:
    addresses: list[str]
    resolved_at: float
    holders: int = 0


class AddressPins:
    """Each host's addresses, resolved once; a pin held by a running crawler never changes,
    one nobody holds is resolved again once it is ``ttl_seconds`` old."""

    def __init__(self, reactor: Any, *, ttl_seconds: float = 60.0) -> None:
        self._reactor = reactor
        self._ttl = ttl_seconds
        self._pins: dict[str, _Pin] = {}
        self._resolving: dict[str, list[defer.Deferred[list[str]]]] = {}

    def pinned(self, host: str) -> list[str] | None:
        pin = self._pins.get(host_key(host))
        return pin.addresses if pin is not None else None

    def lookup(self, host: str) -> defer.Deferred[list[str]]:
        """The host's addresses (empty if it does not resolve), resolving only if no fresh or
        held pin has them. Runs in the reactor thread."""
        host = host_key(host)
        pin = self._pins.get(host)
        if pin is not None and (pin.holders or time.monotonic() - pin.resolved_at < self._ttl):
            return defer.succeed(pin.addresses)
        waiter: defer.Deferred[list[str]] = defer.Deferred()
        waiting = self._resolving.setdefault(host, [])
        waiting.append(waiter)
        if len(waiting) == 1:
            threads.deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), _getaddrinfo, host
            ).addBoth(self._resolved, host)
        return waiter

    def _resolved(self, addresses: list[str] | Any, host: str) -> None:
        if not isinstance(addresses, list):
            addresses = []  # a failure: no address; the connection then fails as dns
        old = self._pins.get(host)
        holders = old.holders if old is not None else 0
        if old is not None and holders:
            addresses = old.addresses  # held while we resolved: it must not change
        self._pins[host] = _Pin(addresses, time.monotonic(), holders)
        for waiter in self._resolving.pop(host, []):
            waiter.callback(addresses)

    def hold(self, host: str) -> None:
        pin = self._pins.get(host_key(host))
        if pin is not None:
            pin.holders += 1

    def release(self, host: str) -> None:
        pin = self._pins.get(host_key(host))
        if pin is not None and pin.holders:
            pin.holders -= 1


def _getaddrinfo(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    # IPv4 first, as Scrapy's own resolver connects over IPv4.
    found = {str(info[4][0]).split("%", 1)[0] for info in infos}
    return sorted(found, key=lambda a: (":" in a, a))


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class GuardedResolver:
    """The reactor's resolver: literals and pinned addresses as they are (never a metadata,
    link-local or unspecified one), any other name resolved and judged strictly."""

    def __init__(self, pins: AddressPins) -> None:
        self.pins = pins

    def _addresses(self, host: str) -> defer.Deferred[list[str]]:
        address = literal(host)
        if address is not None:
            found: defer.Deferred[list[str]] = defer.succeed([address])
            strict = False
        elif (pinned := self.pins.pinned(host)) is not None:
            found, strict = defer.succeed(pinned), False
        else:
            found, strict = self.pins.lookup(host), True
        return found.addCallback(
            lambda addresses: [
                a
                for a in addresses
                if not urls.is_forbidden_ip(a, allow_private_networks=not strict)
            ]
        )

    def resolveHostName(
        self,
        resolutionReceiver: Any,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type] | None = None,
        transportSemantics: str = "TCP",
    ) -> Any:
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)

        def deliver(addresses: list[str]) -> None:
            for address in addresses:
                kind = IPv6Address if ":" in address else IPv4Address
                if addressTypes is None or kind in addressTypes:
                    resolutionReceiver.addressResolved(kind("TCP", address, portNumber))
            resolutionReceiver.resolutionComplete()

        self._addresses(hostName).addCallback(deliver)
        return resolution


def install(reactor: Any) -> AddressPins:
    """Makes a ``GuardedResolver`` the reactor's resolver, both kinds; in the reactor thread."""
    pins = AddressPins(reactor)
    # Twisted wraps it as the simple resolver too (``reactor.resolver``, which connectTCP
    # and so a proxy tunnel use), so both ask it.
    reactor.installNameResolver(GuardedResolver(pins))
    return pins


def installed_pins(reactor: Any) -> AddressPins:
    """The pins of the reactor's guarded resolver; a crawler never runs without one."""
    resolver = getattr(reactor, "nameResolver", None)
    if not isinstance(resolver, GuardedResolver):
        raise RuntimeError("the reactor's resolver is not shardcrawl's GuardedResolver")
    return resolver.pins
