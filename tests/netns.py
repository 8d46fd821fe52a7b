"""Network namespaces a test makes and removes itself (``ip netns``, as root).

``isolated`` is a namespace with nothing but loopback: whatever runs in it cannot reach
anything outside it, however wrong the code under test is. Its ``resolv.conf`` (which ``ip
netns exec`` mounts over /etc/resolv.conf) points at a resolver the test runs inside it.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Joined", "ip", "isolated", "joined", "netns_available"]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def netns_available() -> bool:
    """Root with iproute2: the namespace tests can run."""
    if shutil.which("ip") is None:
        return False
    name = f"sc-probe-{uuid.uuid4().hex[:6]}"
    if ip("netns", "add", name, check=False).returncode != 0:
        return False
    ip("netns", "del", name, check=False)
    return True


@contextmanager
def isolated(*, addresses: tuple[str, ...] = (), nameserver: str | None = None) -> Iterator[str]:
    """A fresh namespace with only ``lo`` (up, with ``addresses`` added to it); its name."""
    name = f"sc-{uuid.uuid4().hex[:8]}"
    etc = Path("/etc/netns") / name
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        for address in addresses:
            ip("-n", name, "addr", "add", address, "dev", "lo")
        if nameserver is not None:
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(
                f"nameserver {nameserver}\noptions timeout:1 attempts:2\n"
            )
        yield name
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        ip("netns", "del", name, check=False)


@dataclass(frozen=True)
class Joined:
    """A namespace joined to ours by a veth pair: ``host_ip`` on our end, ``ns_ip`` on its."""

    name: str
    host_link: str
    host_ip: str
    ns_ip: str

    def cut(self) -> None:
        ip("link", "set", self.host_link, "down")

    def restore(self) -> None:
        ip("link", "set", self.host_link, "up")


@contextmanager
def joined(*, host_ip: str = "10.200.0.1", ns_ip: str = "10.200.0.2") -> Iterator[Joined]:
    """A namespace whose only way out is a /30 veth link to our namespace (private addresses
    that exist only on the pair): servers bound on ``host_ip`` are reachable from inside."""
    with isolated() as name:
        tag = name.removeprefix("sc-")
        host_link, ns_link = f"sch{tag}", f"scn{tag}"
        ip("link", "add", host_link, "type", "veth", "peer", "name", ns_link)
        try:
            ip("link", "set", ns_link, "netns", name)
            ip("addr", "add", f"{host_ip}/30", "dev", host_link)
            ip("link", "set", host_link, "up")
            ip("-n", name, "addr", "add", f"{ns_ip}/30", "dev", ns_link)
            ip("-n", name, "link", "set", ns_link, "up")
            yield Joined(name, host_link, host_ip, ns_ip)
        finally:
            ip("link", "del", host_link, check=False)  # takes its peer with it
