"""A user's Scrapy spider runs as written: callbacks, cb_kwargs, meta, a FormRequest,
priorities, an errback on a 404, Scrapy's dedup (by request, not callback) and dont_filter,
an item pipeline from custom_settings, and spiders found through SHARDCRAWL_SPIDER_MODULES.

The same spider runs once with plain Scrapy and once with shardcrawl on 2 workers against the
same loopback shop; their items must be the same, and the shop's log must show every request
Scrapy would send, as often as Scrapy would send it. A spider that yields what no other worker
could rebuild fails the crawl naming the spider, the request and the key.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError

from shardcrawl.core.ports import free_port
from tests.helpers import ROOT, read_items, start_crawl, start_ready
from tests.shop_site import LISTING_PAGES, PRODUCTS_PER_PAGE, REVIEWS_PER_PRODUCT

MODULES = "tests.shop_spiders"
HOST = "127.0.0.31"


class Shop:
    def __init__(self, tmp_path: Path, name: str) -> None:
        self.port = free_port(HOST)
        self.log = tmp_path / f"{name}-shop-log.jsonl"
        self.process = start_ready(
            "tests.shop_site", [str(self.log), HOST, str(self.port)], what="the shop"
        )
        self.url = f"http://{HOST}:{self.port}/"

    def requests(self) -> Counter[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        entries = [json.loads(line) for line in lines]
        return Counter(f"{e['method']} {e['path']} {e['body']}".strip() for e in entries)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def shops(tmp_path: Path) -> Iterator[list[Shop]]:
    started: list[Shop] = []
    yield started
    for shop in started:
        shop.stop()


def _canonical(items: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def _items_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for record in records:
        items += record["items"]
    return items


def _plain_scrapy(shop: Shop, out: Path) -> list[dict[str, Any]]:
    subprocess.run(
        [sys.executable, "-m", "tests.plain_scrapy", MODULES, "shop", shop.url, str(out)],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return [json.loads(line) for line in out.read_text().splitlines() if line]


def _spec(shop: Shop, out: Path, spider: str) -> dict[str, Any]:
    return {
        "seeds": [shop.url],
        "spider": spider,
        "output": str(out),
        "allow_private_networks": True,
        "max_depth": 10,
        "batch_size": 4,
    }


async def test_a_scrapy_spider_gives_the_same_items_as_plain_scrapy(
    client, workers, task_queue, shops, tmp_path
) -> None:
    plain_shop, our_shop = Shop(tmp_path, "plain"), Shop(tmp_path, "ours")
    shops += [plain_shop, our_shop]
    plain = await asyncio.to_thread(_plain_scrapy, plain_shop, tmp_path / "plain.jsonl")

    workers.extra_env["SHARDCRAWL_SPIDER_MODULES"] = f"shardcrawl.spiders,{MODULES}"
    workers.start(2)
    out = tmp_path / "out"
    handle = await start_crawl(client, _spec(our_shop, out, "shop"), task_queue)
    await asyncio.wait_for(handle.result(), timeout=120)
    ours = _items_of(read_items(out, handle.id))

    products = LISTING_PAGES * PRODUCTS_PER_PAGE
    kinds = Counter(item["kind"] for item in plain)
    assert kinds == {
        "listing": LISTING_PAGES,
        "product": products,
        "review": products * REVIEWS_PER_PRODUCT,
        "stock": products * 2,
        "missing": LISTING_PAGES,
    }, "the reference run itself went wrong"
    assert _canonical(ours) == _canonical(plain)
    assert all("price_cents" in i for i in ours if i["kind"] == "product"), "pipeline skipped"

    # From the shop's side: what plain Scrapy asked, shardcrawl asked as often (robots.txt
    # aside), a POST with its form body included.
    asked = our_shop.requests()
    del asked["GET /robots.txt"]
    assert asked == plain_shop.requests()
    assert asked["POST /reviews product=p10"] == 1
    assert asked["GET /stock/p10"] == 2, "dont_filter requests must go out every time"
    assert asked["GET /product/p10"] == 1, "a request is deduplicated whatever its callback"


@pytest.mark.parametrize(
    ("spider", "says"),
    [
        ("shop_lambda", "callback <function"),
        ("shop_meta", "meta['session'] is object, not JSON"),
    ],
)
async def test_a_request_that_cannot_travel_fails_the_crawl_naming_it(
    client, workers, task_queue, shops, tmp_path, spider, says
) -> None:
    shop = Shop(tmp_path, spider)
    shops.append(shop)
    workers.extra_env["SHARDCRAWL_SPIDER_MODULES"] = MODULES
    workers.start(1)
    handle = await start_crawl(client, _spec(shop, tmp_path / "out", spider), task_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=120)
    message = str(failed.value.cause)
    assert f"spider {spider!r}" in message, message
    assert f"GET {shop.url}list?page=2" in message, message
    assert says in message, message


async def test_a_spider_scrapy_cannot_start_fails_the_crawl_at_once_with_the_cause(
    client, workers, task_queue, shops, tmp_path
) -> None:
    """Not after a batch timeout per retry: the first attempt fails, naming the cause."""
    shop = Shop(tmp_path, "broken")
    shops.append(shop)
    workers.extra_env["SHARDCRAWL_SPIDER_MODULES"] = MODULES
    workers.start(1)
    spec = _spec(shop, tmp_path / "out", "shop_broken_settings")
    started = asyncio.get_running_loop().time()
    handle = await start_crawl(client, spec, task_queue)
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=120)
    assert asyncio.get_running_loop().time() - started < 30
    message = str(failed.value.cause)
    assert "spider 'shop_broken_settings' cannot run: BrokenSettingsSpider" in message, message
