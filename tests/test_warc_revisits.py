"""Incremental WARC crawls: pages unchanged since the previous crawl are archived as revisits."""

from __future__ import annotations

import asyncio
import json

import pytest

from shardcrawl.models import CrawlSpec
from shardcrawl.temporal.client import CrawlClient
from tests.changing_site import COUNTS, ChangingSite
from tests.warc_reader import _check_index, _check_structure, _header, _local_archive


@pytest.fixture
def changing_site(tmp_path):
    site = ChangingSite("127.0.0.43", tmp_path)
    yield site
    site.close()


async def test_an_incremental_warc_crawl_writes_revisits_pointing_at_the_earlier_capture(
    client, workers, task_queue, changing_site, tmp_path
):
    workers.start(1)
    crawls = CrawlClient(client, task_queue=task_queue)
    out = tmp_path / "out"

    def spec(**more: object) -> CrawlSpec:
        return CrawlSpec(
            seeds=[changing_site.origin + "/"],
            allow_private_networks=True,
            output=str(out),
            shards=1,
            warc=True,
            **more,
        )

    first = await crawls.start(spec())
    await asyncio.wait_for(first.wait(), timeout=120)
    changing_site.serve_version(2)
    second = await crawls.start(spec(previous_crawl=first.crawl_id, warc_dedup="digest"))
    await asyncio.wait_for(second.wait(), timeout=120)

    before = _local_archive(out, first.crawl_id).captures()
    after_archive = _local_archive(out, second.crawl_id)
    _check_structure(after_archive)
    _check_index(after_archive)
    after = after_archive.captures()
    origin = changing_site.origin
    not_modified = [f"{origin}/{kind}/{i}" for kind in ("etag", "lm") for i in range(COUNTS[kind])]
    for url in not_modified:
        record = after[url]
        assert record.rec_type == "revisit"
        assert _header(record, "WARC-Profile").endswith("/revisit/server-not-modified")
        assert record.http_headers.get_statuscode() == "304"
        earlier = before[url]
        assert _header(record, "WARC-Refers-To-Target-URI") == url
        assert _header(record, "WARC-Refers-To-Date") == _header(earlier, "WARC-Date")
        assert _header(record, "WARC-Payload-Digest") == _header(earlier, "WARC-Payload-Digest")
    # /plain has no validators and the same body: with digest dedup, a revisit too.
    plain = after[f"{origin}/plain"]
    assert plain.rec_type == "revisit"
    assert _header(plain, "WARC-Profile").endswith("/revisit/identical-payload-digest")
    assert _header(plain, "WARC-Refers-To-Date") == _header(before[f"{origin}/plain"], "WARC-Date")
    assert _header(plain, "WARC-Payload-Digest") == _header(
        before[f"{origin}/plain"], "WARC-Payload-Digest"
    )
    assert plain.http_headers.get_statuscode() == "200"
    # Changed and new pages are fresh captures.
    for url in (f"{origin}/changed/0", f"{origin}/new/0", f"{origin}/"):
        assert after[url].rec_type == "response"
        assert after[url].stored
    # Each revisit resolves through the first crawl's index to a response with the payload.
    first_index = [
        json.loads(line.split(" ", 2)[2])
        for line in (out / first.crawl_id / "warc" / "index.cdxj").read_text().splitlines()
    ]
    for url in [*not_modified, f"{origin}/plain"]:
        target = after[url]
        (entry,) = [
            e
            for e in first_index
            if e["url"] == _header(target, "WARC-Refers-To-Target-URI")
            and e["digest"] == _header(target, "WARC-Payload-Digest")
        ]
        assert entry["mime"] != "warc/revisit" and entry["status"] == "200"
