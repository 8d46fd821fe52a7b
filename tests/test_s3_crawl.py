"""A crawl whose output goes to S3 (moto's server over HTTP), through worker processes."""

from __future__ import annotations

import asyncio
import json

import boto3

from shardcrawl.testing.sites.graph import reachable_pages
from tests.helpers import start_crawl


async def test_crawl_writes_items_and_report_to_s3(
    client, workers, task_queue, site_factory, moto_s3_endpoint, s3_bucket
):
    site = site_factory(ips=("127.0.0.2", "127.0.0.3"), pages_per_host=12)
    workers.extra_env["SHARDCRAWL_S3_ENDPOINT_URL"] = moto_s3_endpoint
    workers.start(2)
    spec = {
        "seeds": [site.seed_url],
        "allowed_domains": ["127.0.0.2", "127.0.0.3"],
        "max_depth": 4,
        "output": f"s3://{s3_bucket}/crawls",
        "allow_private_networks": True,
    }
    handle = await start_crawl(client, spec, task_queue)
    report = await asyncio.wait_for(handle.result(), timeout=120)

    s3 = boto3.client("s3", endpoint_url=moto_s3_endpoint, region_name="us-east-1")
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=s3_bucket, Prefix=f"crawls/{handle.id}/"
        )
        for obj in page.get("Contents", [])
    ]
    item_keys = [k for k in keys if k.startswith(f"crawls/{handle.id}/items/")]
    assert item_keys and all(k.endswith(".jsonl") for k in item_keys)
    urls = []
    for key in item_keys:
        body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read().decode()
        records = [json.loads(line) for line in body.splitlines() if line]
        urls += [r["url"] for r in records if r["status"] is not None]
    assert len(urls) == len(set(urls))
    assert set(reachable_pages(site.config, [site.seed_url], max_depth=4)) <= set(urls)
    stored = json.loads(
        s3.get_object(Bucket=s3_bucket, Key=f"crawls/{handle.id}/report.json")["Body"].read()
    )
    assert stored["pages_fetched"] == report.pages_fetched == len(urls)
    assert f"crawls/{handle.id}/robots/" in " ".join(keys), "robots.txt not kept in the store"
