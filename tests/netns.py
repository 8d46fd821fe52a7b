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
from pathlib import Path

__all__ = ["ip", "isolated", "netns_available"]


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
