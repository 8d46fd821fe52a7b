"""Generated multi-host sites on distinct 127.0.0.x addresses, served by a subprocess."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shardcrawl.core.ports import free_port
from shardcrawl.testing.sites.graph import SiteConfig
from shardcrawl.testing.sites.process import SiteProcess


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[Callable[..., SiteProcess]]:
    started: list[SiteProcess] = []

    def make(
        ips: tuple[str, ...] = ("127.0.0.2", "127.0.0.3", "localhost"), **options: object
    ) -> SiteProcess:
        port = free_port("127.0.0.2", also=ips)
        config = SiteConfig(hosts=tuple(f"{ip}:{port}" for ip in ips), **options)  # type: ignore[arg-type]
        site = SiteProcess(config, tmp_path / f"access-{len(started)}.jsonl")
        site.start()
        started.append(site)
        return site

    yield make
    for site in started:
        site.stop()
