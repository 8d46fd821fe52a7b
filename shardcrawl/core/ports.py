"""Free TCP ports, for the servers the tools and tests start (a port nothing listens on, too)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable

__all__ = ["free_port", "free_ports"]

# Ports tried on ``host`` beyond those asked for, before giving up on the IPs in ``also``.
_RETRIES = 100


def _can_bind(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", also: Iterable[str] = ()) -> int:
    """A port free right now on ``host`` and on every IP in ``also``: nothing listens there."""
    return free_ports(1, host, also)[0]


def free_ports(count: int, host: str = "127.0.0.1", also: Iterable[str] = ()) -> list[int]:
    """Distinct ports free right now on ``host`` and on every IP in ``also``: the sockets on
    ``host`` stay open until every port is chosen."""
    others = [ip for ip in also if ip != host]
    ports: list[int] = []
    with contextlib.ExitStack() as held:
        for _ in range(count + _RETRIES):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            if all(_can_bind(ip, port) for ip in others):
                ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} ports free on {host} and {others}")
