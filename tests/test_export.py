"""``shardcrawl export``: a real crawl's records in one JSONL or CSV file, from a local output
and from S3 (moto's server), the CLI as a user runs it; and a large output exports one item
file at a time."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from pathlib import Path

import boto3
import pytest

from shardcrawl.cli.export import export, item_keys
from shardcrawl.core.layout import items_key
from shardcrawl.store import FileStore, open_store
from tests.helpers import read_records, shardcrawl

HOSTS = ("127.0.4.2", "127.0.4.3")


async def _crawl(cli_env, site, out: str, **env: str) -> str:
    domains = [arg for host in HOSTS for arg in ("--allowed-domain", host)]
    started = await shardcrawl(
        "start", site.seed_url, "--out", out, "--allow-private-networks", *domains,
        "--max-depth", "3", env=cli_env(**env),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    crawl_id = started.stdout.strip().splitlines()[-1]
    waited = await shardcrawl("wait", crawl_id, env=cli_env(**env))
    assert waited.returncode == 0, waited.stderr
    return crawl_id


def _check(jsonl: str, table: str, expected: list[dict]) -> None:
    lines = jsonl.splitlines()
    exported = [json.loads(line) for line in lines]
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(map(key, exported)) == sorted(map(key, expected))
    rows = list(csv.DictReader(io.StringIO(table)))
    # A row per item, as a Scrapy feed has (a record with none is one row), in record order.
    per_item = [(r, item) for r in exported for item in (r["items"] or [None])]
    assert [r["url"] for r in rows] == [r["url"] for r, _ in per_item]
    assert list(rows[0])[:2] == ["url", "status"] and "items" not in rows[0]
    for row, (record, item) in zip(rows, per_item, strict=True):
        assert row["status"] == ("" if record.get("status") is None else str(record["status"]))
        assert row.get("title", "") == ((item or {}).get("title") or "")


async def test_export_a_local_crawl_as_jsonl_and_csv(cli_env, workers, site_factory, tmp_path):
    site = site_factory(ips=HOSTS, pages_per_host=15)
    workers.start(1)
    out = tmp_path / "out"
    crawl_id = await _crawl(cli_env, site, str(out))
    expected = read_records(out, crawl_id)
    assert len(expected) > 20

    files = {}
    for fmt in ("jsonl", "csv"):
        target = tmp_path / f"all.{fmt}"
        done = await shardcrawl(
            "export", crawl_id, "--format", fmt, "--out", str(target), env=cli_env()
        )
        assert done.returncode == 0, done.stderr
        assert f"{len(expected)} records of {crawl_id} to {target}" in done.stderr
        files[fmt] = target.read_text(encoding="utf-8")
    _check(files["jsonl"], files["csv"], expected)
    # To standard output, and with the output named instead of asked of Temporal.
    piped = await shardcrawl("export", crawl_id, "--from", str(out), env=cli_env())
    assert piped.returncode == 0 and piped.stdout == files["jsonl"], piped.stderr

    wrong = await shardcrawl("export", crawl_id, "--from", str(tmp_path), env=cli_env())
    assert wrong.returncode == 2 and "no records of crawl" in wrong.stderr, wrong.stderr
    unwritable = await shardcrawl("export", crawl_id, "--out", "/proc/nope/x", env=cli_env())
    assert unwritable.returncode == 2 and "--out /proc/nope/x" in unwritable.stderr
    assert "Traceback" not in wrong.stderr + unwritable.stderr


async def test_export_a_crawl_on_s3(
    cli_env, workers, site_factory, tmp_path, moto_s3_endpoint, s3_bucket
):
    site = site_factory(ips=HOSTS, pages_per_host=10)
    workers.extra_env["SHARDCRAWL_S3_ENDPOINT_URL"] = moto_s3_endpoint
    workers.start(1)
    output = f"s3://{s3_bucket}/crawls"
    env = {"SHARDCRAWL_S3_ENDPOINT_URL": moto_s3_endpoint}
    crawl_id = await _crawl(cli_env, site, output, **env)
    store = open_store(output, s3_endpoint_url=moto_s3_endpoint)
    expected = [
        json.loads(line)
        for key in item_keys(store, crawl_id)
        for line in (store.get_bytes(key) or b"").splitlines()
        if line.strip()
    ]
    assert len(expected) > 10
    files = {}
    for fmt in ("jsonl", "csv"):
        target = tmp_path / f"all.{fmt}"
        done = await shardcrawl(
            "export", crawl_id, "--format", fmt, "--out", str(target), env=cli_env(**env)
        )
        assert done.returncode == 0, done.stderr
        files[fmt] = target.read_text(encoding="utf-8")
    _check(files["jsonl"], files["csv"], expected)
    # report.html is there too, typed so that a browser opens it from S3.
    s3 = boto3.client("s3", endpoint_url=moto_s3_endpoint, region_name="us-east-1")
    head = s3.head_object(Bucket=s3_bucket, Key=f"crawls/{crawl_id}/report.html")
    assert head["ContentType"] == "text/html; charset=utf-8"


class _Null(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_large_output_exports_one_item_file_at_a_time(tmp_path: Path, fmt: str) -> None:
    """About 24 MB of records in 300 files: the export never holds more than a few files."""
    store = FileStore(tmp_path / "out")
    pad = "x" * 300
    for batch in range(300):
        origin = f"http://127.0.4.{2 + batch % 2}"
        lines = [
            json.dumps({"url": f"{origin}/p/{batch}-{i}", "status": 200, "pad": pad})
            for i in range(200)
        ]
        store.put_bytes(items_key("big", origin, f"b{batch:05d}"), "\n".join(lines).encode())
    largest = max(len(store.get_bytes(k) or b"") for k in item_keys(store, "big"))
    tracemalloc.start()
    try:
        count = export(store, "big", _Null(), format=fmt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 300 * 200
    assert peak < 6 * largest < 24_000_000 / 10, (peak, largest)
