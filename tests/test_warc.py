"""WARC output: crawls of loopback sites read back with warcio (an independent reader), record
by record, against what the site itself sent."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError

from shardcrawl.activities.cdxj import surt
from shardcrawl.cli.report_view import report_table
from shardcrawl.core.errors import SpecError
from shardcrawl.models import BatchRequest, BatchResult, CrawlReport, CrawlSpec
from shardcrawl.models.validation import parse_spec
from shardcrawl.temporal.client import CrawlClient
from shardcrawl.temporal.config import Config
from shardcrawl.temporal.worker import build_activities, build_worker
from tests.archive_site import BINARY, CHUNKED_HTML, GZIP_HTML, LIMIT, ArchiveSite
from tests.helpers import render
from tests.warc_reader import Archive, _check_index, _check_structure, _header, _local_archive

TRUNCATED = {"/big", "/chunked-big"}


def _check_against_site(archive: Archive, site: ArchiveSite) -> None:
    """Replaying a response record gives what the site sent: status, headers, payload."""
    captures = archive.captures()
    served = {url: sent for url, sent in site.sent.items() if not url.endswith("/robots.txt")}
    assert set(captures) == set(served)
    for url, sent in served.items():
        record = captures[url]
        path = url.removeprefix(site.origin)
        assert record.rec_type == "response"
        assert record.http_headers.get_statuscode() == str(sent.status), url
        for name, value in sent.headers.items():
            if name == "Transfer-Encoding":
                # Twisted undid the chunking, so the record does not claim it.
                assert record.http_headers.get_header(name) is None
                continue
            assert record.http_headers.get_header(name) == value, (url, name)
        if path in TRUNCATED:
            assert _header(record, "WARC-Truncated") == "length"
            assert record.stored == sent.body[:LIMIT], url
            continue
        assert _header(record, "WARC-Truncated") is None
        assert record.stored == sent.body, url
    assert gzip.decompress(captures[site.origin + "/gzip"].stored) == GZIP_HTML
    assert captures[site.origin + "/binary"].stored == BINARY
    assert captures[site.origin + "/chunked"].stored == CHUNKED_HTML
    assert site.flaky_asked >= 2 and captures[site.origin + "/flaky"].stored == b"fine now"
    redirect = captures[site.origin + "/redirect"]
    assert redirect.http_headers.get_header("Location") == "/final"


def _check_records(items: list[dict[str, Any]], archive: Archive, bodies: dict[str, bytes]) -> None:
    """Page records name their capture's digest, and their stored body."""
    captures = archive.captures()
    for item in items:
        digest = _header(captures[item["url"]], "WARC-Payload-Digest")
        assert item["payload_digest"] == digest
        if item["size_bytes"]:
            where = item["body"]
            body = bodies[where["key"]][where["offset"] : where["offset"] + where["length"]]
            assert len(body) == item["size_bytes"]
            if item["url"].endswith("/gzip"):
                assert body == GZIP_HTML  # bodies are stored decoded, as the spider saw them
            if item["url"].endswith("/binary"):
                assert body == BINARY


@pytest.fixture
def archive_site():
    with ArchiveSite("127.0.0.41", "127.0.0.42") as site:
        yield site


def _spec(site: ArchiveSite, output: str) -> CrawlSpec:
    return CrawlSpec(
        seeds=[site.origin + "/"],
        allowed_domains=["127.0.0.41", "127.0.0.42"],
        allow_private_networks=True,
        output=output,
        shards=2,
        batch_size=3,
        max_response_bytes=LIMIT,
        warc=True,
        store_bodies=True,
    )


def _local_items(out: Path, crawl_id: str) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    records = [
        json.loads(line)
        for path in sorted((out / crawl_id / "items").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    items = [r for r in records if r["status"] is not None]
    bodies = {
        str(p.relative_to(out)): p.read_bytes() for p in (out / crawl_id / "bodies").rglob("*.bin")
    }
    return items, bodies


async def test_a_warc_crawl_archives_every_exchange_as_the_site_sent_it(
    client, workers, task_queue, archive_site, tmp_path
):
    workers.start(2)
    out = tmp_path / "out"
    crawl = await CrawlClient(client, task_queue=task_queue).start(_spec(archive_site, str(out)))
    report: CrawlReport = await asyncio.wait_for(crawl.wait(), timeout=120)
    assert report.warc_records > 0

    archive = _local_archive(out, crawl.crawl_id)
    _check_structure(archive)
    _check_against_site(archive, archive_site)
    _check_index(archive)
    items, bodies = _local_items(out, crawl.crawl_id)
    _check_records(items, archive, bodies)
    # One WARC file per batch, named by it; the truncated pages are oversize, not pages.
    assert {name.split(".")[0] for name in archive.files} == {
        p.stem for p in (out / crawl.crawl_id / "items").rglob("*.jsonl")
    }
    assert report.failure_classes.get("oversize") == len(TRUNCATED)
    shown = render(report_table(report))
    assert f"{report.warc_records} records, {report.warc_bytes:,} bytes" in shown


async def test_warc_on_s3(client, workers, task_queue, archive_site, moto_s3_endpoint, s3_bucket):
    workers.extra_env["SHARDCRAWL_S3_ENDPOINT_URL"] = moto_s3_endpoint
    workers.start(1)
    spec = _spec(archive_site, f"s3://{s3_bucket}/crawls")
    crawl = await CrawlClient(client, task_queue=task_queue).start(spec)
    await asyncio.wait_for(crawl.wait(), timeout=120)

    s3 = boto3.client("s3", endpoint_url=moto_s3_endpoint, region_name="us-east-1")
    prefix = f"crawls/{crawl.crawl_id}/"

    def get(key: str) -> bytes:
        return s3.get_object(Bucket=s3_bucket, Key=prefix + key)["Body"].read()

    keys = [
        obj["Key"].removeprefix(prefix)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    files = {k.removeprefix("warc/"): get(k) for k in keys if k.endswith(".warc.gz")}
    archive = Archive(files, get("warc/index.cdxj"), json.loads(get("report.json")))
    _check_structure(archive)
    _check_against_site(archive, archive_site)
    _check_index(archive)
    records = [
        json.loads(line)
        for k in keys
        if k.startswith("items/")
        for line in get(k).decode().splitlines()
    ]
    items = [r for r in records if r["status"] is not None]
    bodies = {prefix.removeprefix("crawls/") + k: get(k) for k in keys if k.startswith("bodies/")}
    _check_records(items, archive, bodies)
    assert not [k for k in keys if k.startswith("state/")], "index parts left behind"


def test_warc_spec_fields():
    spec = parse_spec({"seeds": ["https://example.com/"], "warc": True, "warc_dedup": "digest"})
    assert spec.warc and spec.warc_dedup == "digest" and not spec.store_bodies
    with pytest.raises(SpecError, match="warc_dedup 'digest' needs warc: true"):
        parse_spec({"seeds": ["https://example.com/"], "warc_dedup": "digest"})
    with pytest.raises(SpecError, match="warc_dedup"):
        parse_spec({"seeds": ["https://example.com/"], "warc": True, "warc_dedup": "sha1"})


def test_cli_flags_reach_the_spec(tmp_path):
    from shardcrawl.cli.main import build_parser, spec_from_args

    args = build_parser().parse_args(
        ["start", "https://example.com/", "--warc", "--warc-dedup", "digest", "--store-bodies"]
        + ["--out", str(tmp_path)]
    )
    spec = spec_from_args(args)
    assert spec.warc and spec.warc_dedup == "digest" and spec.store_bodies


def test_surt_keys():
    assert surt("http://www.Example.com:8080/A?b=1&a=2") == "com,example:8080)/a?a=2&b=1"
    assert surt("https://example.com:443/") == "com,example)/"
    assert surt("http://127.0.0.41:8000/x") == "41,0,0,127:8000)/x"


async def test_a_batch_run_twice_leaves_one_file_and_one_capture_per_url(
    client, task_queue, archive_site, tmp_path
):
    """Every batch's first attempt does all its work, files included, then fails: Temporal
    runs it again under the same batch id, and the archive holds each URL once."""
    real = {a.__name__: a for a in build_activities(Config(task_queue=task_queue))}
    attempts: list[str] = []

    @activity.defn(name="crawl_batch")
    async def crawl_batch_failing_once(request: BatchRequest) -> BatchResult:
        result = await real["crawl_batch"](request)
        attempts.append(request.batch_id)
        if activity.info().attempt == 1:
            raise ApplicationError("the worker died after writing (test)", type="Lost")
        return result

    activities = [a for a in real.values() if a.__name__ != "crawl_batch"]
    out = tmp_path / "out"
    config = Config(task_queue=task_queue)
    async with build_worker(client, config, activities=[*activities, crawl_batch_failing_once]):
        crawl = await CrawlClient(client, task_queue=task_queue).start(
            _spec(archive_site, str(out))
        )
        report = await asyncio.wait_for(crawl.wait(), timeout=180)

    assert len(attempts) == 2 * len(set(attempts)) and report.batch_retries == len(set(attempts))
    archive = _local_archive(out, crawl.crawl_id)
    assert sorted(name.removesuffix(".warc.gz") for name in archive.files) == sorted(set(attempts))
    _check_structure(archive)
    # The site saw every page twice; the archive has each once.
    for host in (archive_site, archive_site.other):
        asked = Counter(p for p in host.requests if p != "/robots.txt")
        assert asked and set(asked.values()) == {2}, asked
    _check_against_site(archive, archive_site)
    _check_index(archive)


async def test_stored_bodies_without_warc(client, workers, task_queue, archive_site, tmp_path):
    workers.start(1)
    out = tmp_path / "out"
    spec = _spec(archive_site, str(out)).model_copy(update={"warc": False})
    crawl = await CrawlClient(client, task_queue=task_queue).start(spec)
    report = await asyncio.wait_for(crawl.wait(), timeout=120)
    assert not (out / crawl.crawl_id / "warc").exists() and report.warc_records == 0
    items, bodies = _local_items(out, crawl.crawl_id)
    by_path = {item["url"].removeprefix(archive_site.origin): item for item in items}
    for path, expected in (("/gzip", GZIP_HTML), ("/binary", BINARY), ("/chunked", CHUNKED_HTML)):
        where = by_path[path]["body"]
        stored = bodies[where["key"]][where["offset"] : where["offset"] + where["length"]]
        assert stored == expected, path
        assert "payload_digest" not in by_path[path]
    assert "body" not in by_path["/redirect"]  # an empty body is not stored
