"""Did a scale crawl record each page once? The generator's pages, its output, the site's log."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _harness import WARM_UP_PATH

from shardcrawl.testing.sites import graph
from shardcrawl.testing.sites.graph import (
    SiteConfig,
    canonical_page_url,
    page_paths,
    reachable_pages,
)

__all__ = [
    "MAX_DEPTH",
    "check_access_log",
    "check_output",
    "expected_pages",
    "lost_sample",
]

MAX_DEPTH = 1_000_000


def url_hash(url: str) -> int:
    """64-bit hash of a URL: a million of them in a set is ~70 MB instead of ~200 MB."""
    digest = hashlib.blake2b(url.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def expected_pages(config: SiteConfig, seed: str) -> tuple[set[int], dict[str, Any]]:
    """Hashes of every page the generator says a correct crawl records, and how long the
    generator took. The generator's link graph cache is dropped afterwards."""
    start = time.monotonic()
    depths = reachable_pages(config, [seed], max_depth=MAX_DEPTH)
    seconds = time.monotonic() - start
    per_host = len(page_paths(config))
    hashes = {url_hash(url) for url in depths}
    info = {
        "expected_pages": len(depths),
        "pages_on_site": per_host * len(config.hosts),
        "fully_reachable": len(depths) == per_host * len(config.hosts),
        "max_link_depth": max(depths.values()),
        "reachable_pages_seconds": round(seconds, 2),
        "hash_collisions": len(depths) - len(hashes),
    }
    del depths
    graph.build_site.cache_clear()  # the link graph: ~700 MB at a million pages
    return hashes, info


def lost_sample(config: SiteConfig, seed: str, seen: set[int], limit: int = 10) -> list[str]:
    """A few lost URLs by name (the generator is run again: only when pages were lost)."""
    out = []
    for url in reachable_pages(config, [seed], max_depth=MAX_DEPTH):
        if url_hash(url) not in seen:
            out.append(url)
            if len(out) >= limit:
                break
    graph.build_site.cache_clear()
    return out


def check_output(
    out_dir: Path, crawl_id: str, expected: set[int]
) -> tuple[dict[str, Any], set[int]]:
    """Read OUT/ID/items/**/*.jsonl: duplicates, lost and unexpected pages."""
    seen: set[int] = set()
    duplicated: set[int] = set()
    records = duplicate_records = unexpected = bad_lines = files = 0
    unexpected_sample: list[str] = []
    statuses: Counter[str] = Counter()
    start = time.monotonic()
    for path in sorted((out_dir / crawl_id / "items").rglob("*.jsonl")):
        files += 1
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    url = item["url"]
                except (ValueError, KeyError, TypeError):
                    bad_lines += 1
                    continue
                records += 1
                statuses[str(item.get("status"))] += 1
                h = url_hash(url)
                if h in seen:
                    duplicate_records += 1
                    duplicated.add(h)
                    continue
                seen.add(h)
                if h not in expected:
                    unexpected += 1
                    if len(unexpected_sample) < 10:
                        unexpected_sample.append(url)
    lost = sum(1 for h in expected if h not in seen)
    return {
        "item_files": files,
        "records": records,
        "distinct_urls": len(seen),
        "duplicate_urls": len(duplicated),
        "duplicate_records": duplicate_records,
        "lost_pages": lost,
        "unexpected_urls": unexpected,
        "unexpected_sample": unexpected_sample,
        "unparseable_lines": bad_lines,
        "status_counts": dict(sorted(statuses.items())),
        "check_seconds": round(time.monotonic() - start, 2),
    }, seen


def check_access_log(path: Path) -> dict[str, Any]:
    """The site's own record: requests served, and pages requested more than once."""
    seen: set[int] = set()
    twice: set[int] = set()
    requests = robots = repeat_requests = 0
    statuses: Counter[str] = Counter()
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r["path"] == WARM_UP_PATH:
                    continue
                requests += 1
                statuses[str(r["status"])] += 1
                if r["path"] == "/robots.txt":
                    robots += 1
                    continue
                h = url_hash(canonical_page_url(r["host"], r["path"]))
                if h in seen:
                    repeat_requests += 1
                    twice.add(h)
                else:
                    seen.add(h)
    return {
        "requests": requests,
        "robots_requests": robots,
        "pages_requested": len(seen),
        "pages_requested_more_than_once": len(twice),
        "repeat_requests": repeat_requests,
        "status_counts": dict(sorted(statuses.items())),
    }
