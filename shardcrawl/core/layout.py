"""Where a crawl's objects live in its store: the output layout other tools rely on.

ID is the crawl's folder, ``crawl_folder(crawl_id)``: the crawl id, with a scheduled run's
Temporal timestamp (``nightly-2026-12-01T03:00:00Z``) written without colons
(``nightly-20261201-030000``), the same form as generated ids (``crawl-20261201-030000-ab12cd``);
colons break paths on some filesystems and tools. The crawl id itself stays as Temporal gave it.

ID/items/ORIGIN/BATCH.jsonl   one JSON object per fetched page
ID/bodies/ORIGIN/BATCH.bin    with store_bodies: the pages' bodies, end to end (records say where)
ID/warc/BATCH.warc.gz         with warc: the batch's WARC/1.1 records, one gzip member each
ID/warc/index.cdxj            with warc: the CDXJ index of every WARC file, sorted
ID/report.json                the crawl's final stats
ID/report.html                the same as a page: charts over time, hosts, failures, proxies
ID/robots/ORIGIN.txt          robots.txt as fetched once per origin
ID/state/...                  claim-check segments of workflow state (policy.segments)
_schedules/NAME/last-completed.json   the schedule's last completed crawl (incremental runs)
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote, urlsplit

from shardcrawl.core import urls

__all__ = [
    "batch_segment_key",
    "bodies_key",
    "warc_index_key",
    "warc_index_part_key",
    "warc_index_parts_prefix",
    "warc_key",
    "warc_prefix",
    "crawl_folder",
    "items_key",
    "items_prefix",
    "origin_items_prefix",
    "previous_crawl_index_key",
    "schedule_pointer_key",
    "fetch_options_key",
    "report_html_key",
    "report_key",
    "robots_key",
    "shard_state_key",
    "sitemap_segment_key",
    "shard_state_prefix",
    "state_prefix",
]


_SCHEDULED_AT = re.compile(r"-(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$")


def crawl_folder(crawl_id: str) -> str:
    """The crawl's folder in its output: path-safe, and always the same for a crawl id. A scheduled
    run's ``-YYYY-MM-DDTHH:MM:SSZ`` becomes ``-YYYYMMDD-HHMMSS``; any other colon a ``-``."""
    return _SCHEDULED_AT.sub(r"-\1\2\3-\4\5\6", crawl_id).replace(":", "-")


def items_prefix(crawl_id: str) -> str:
    return f"{crawl_folder(crawl_id)}/items/"


def items_key(crawl_id: str, origin: str, batch_id: str) -> str:
    """Deterministic per batch, so a retried batch replaces its own earlier output."""
    return f"{origin_items_prefix(crawl_id, origin)}{batch_id}.jsonl"


def bodies_key(crawl_id: str, origin: str, batch_id: str) -> str:
    """Deterministic per batch, like the items file it goes with."""
    return f"{crawl_folder(crawl_id)}/bodies/{urls.origin_key(origin)}/{batch_id}.bin"


def warc_prefix(crawl_id: str) -> str:
    return f"{crawl_folder(crawl_id)}/warc/"


def warc_key(crawl_id: str, batch_id: str) -> str:
    """One file per batch, named by it: a re-run batch replaces its file."""
    return f"{warc_prefix(crawl_id)}{batch_id}.warc.gz"


def warc_index_key(crawl_id: str) -> str:
    return f"{warc_prefix(crawl_id)}index.cdxj"


def warc_index_parts_prefix(crawl_id: str) -> str:
    """The batches' sorted index parts, merged into the index when the crawl ends."""
    return f"{state_prefix(crawl_id)}warc-index/"


def warc_index_part_key(crawl_id: str, batch_id: str) -> str:
    return f"{warc_index_parts_prefix(crawl_id)}{batch_id}.cdxj"


def origin_items_prefix(crawl_id: str, origin: str) -> str:
    return f"{items_prefix(crawl_id)}{urls.origin_key(origin)}/"


def previous_crawl_index_key(crawl_id: str, shard: int) -> str:
    """The previous crawl's item files that a shard of an incremental crawl owns."""
    return f"{state_prefix(crawl_id)}previous-crawl/shard-{shard:04d}.json"


def schedule_pointer_key(schedule: str) -> str:
    """Which crawl the schedule completed last: the next incremental run compares with it."""
    return f"_schedules/{schedule}/last-completed.json"


def report_key(crawl_id: str) -> str:
    return f"{crawl_folder(crawl_id)}/report.json"


def report_html_key(crawl_id: str) -> str:
    return f"{crawl_folder(crawl_id)}/report.html"


def robots_key(crawl_id: str, origin: str) -> str:
    return f"{crawl_folder(crawl_id)}/robots/{urls.origin_key(origin)}.txt"


def shard_state_prefix(crawl_id: str, shard: int, generation: int) -> str:
    """One run's saved state; the next run deletes its predecessor's once it has loaded it."""
    return f"{state_prefix(crawl_id)}shard-{shard:04d}/g{generation:06d}/"


def shard_state_key(crawl_id: str, shard: int, generation: int, kind: str, part: int) -> str:
    """Deterministic, so a retried save rewrites the same object."""
    return f"{shard_state_prefix(crawl_id, shard, generation)}{kind}-{part:05d}.bin"


def sitemap_segment_key(crawl_id: str, sitemap_url: str, part: int) -> str:
    """Where a sitemap's entries go, a page of records at a time; named by the sitemap, so
    a retried fetch rewrites its own pages."""
    name = hashlib.blake2b(sitemap_url.encode(), digest_size=10).hexdigest()
    return f"{state_prefix(crawl_id)}sitemaps/{name}/{part:05d}.bin"


def fetch_options_key(crawl_id: str, digest: str) -> str:
    """The crawl's fetch options, stored once and named by their digest in activity inputs."""
    return f"{state_prefix(crawl_id)}fetch-{digest}.json"


def batch_segment_key(crawl_id: str, batch_id: str, part: int) -> str:
    """Where a batch result too large for a payload leaves its outcomes and links."""
    return f"{state_prefix(crawl_id)}batches/{batch_id}/{part:05d}.bin"


def state_prefix(crawl_id: str) -> str:
    """All of a crawl's claim-check state, deleted once its report is written."""
    return f"{crawl_folder(crawl_id)}/state/"


def shown_location(url: str) -> str:
    """A local output as the path a person types (/data/crawls), other stores as URLs."""
    if url.startswith("file://"):
        return unquote(urlsplit(url).path) or "/"
    return url
