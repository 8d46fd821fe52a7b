"""The network guard, tested where a failure cannot leak: the crawler, its Temporal server, the
sites and a DNS server all run in a namespace with only loopback (tests/guard_scenario.py).
Every forbidden target must be refused before any connection attempt: from the crawl's own
records (``forbidden_address``, no request counted) and from the traps listening there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import guard_scenario as scenario
from tests.helpers import ROOT
from tests.netns import isolated, netns_available

pytestmark = pytest.mark.skipif(not netns_available(), reason="needs root and iproute2")


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("guard")
    with isolated(addresses=scenario.ADDRESSES, nameserver=scenario.NAMESERVER) as ns:
        run = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.guard_scenario", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_no_forbidden_target_was_ever_connected_to(seen: dict) -> None:
    assert seen["traps"] == {"metadata": 0, "zero": 0, "v6": 0}
    assert seen["proxied"] == [], "the proxied host was reached without its proxy"


def test_every_forbidden_target_is_refused_before_connecting(seen: dict) -> None:
    report = seen["report"]
    # Each forbidden URL once (odd spellings of one address are distinct paths), the
    # redirect's target, the proxied URL; none counted as a request.
    assert report["failure_classes"] == {"forbidden_address": len(scenario.FORBIDDEN)}
    for host in (scenario.METADATA, "0.0.0.0", "::", "meta.test", scenario.PROXIED):
        stats = report["hosts"][host]
        assert stats["requests"] == 0 and stats["failures"] >= 1, (host, stats)
    assert "/redirect" in seen["site"] and "/redirected" not in seen["site"]


def test_a_dns_answer_that_changes_is_resolved_once_and_connected_to_as_checked(
    seen: dict,
) -> None:
    """rebind.test answers the site's address first, then the metadata address: the crawl
    asked once and fetched the page from the site."""
    pages = {item["url"]: item for item in seen["items"]}
    assert pages[scenario.REBIND]["status"] == 200
    assert seen["site"].count("/rebind") == 1
    assert seen["dns"]["rebind.test"] == 1, seen["dns"]
