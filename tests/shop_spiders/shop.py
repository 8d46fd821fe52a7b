"""A spider written for plain Scrapy, as users write them: listing -> product -> reviews, with
pagination, cb_kwargs, meta, a FormRequest, priorities, an errback on a 404, a duplicate
request that Scrapy's filter drops, and dont_filter requests it must not drop. Plus two
spiders that yield what no other worker could rebuild (a lambda callback, non-JSON meta)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response
from twisted.python.failure import Failure


class ShopSpider(scrapy.Spider):
    name = "shop"
    custom_settings = {"ITEM_PIPELINES": {"tests.shop_spiders.shop.PricePipeline": 300}}

    def __init__(self, start: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [start] if start else []

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        page = response.meta.get("page", 1)
        yield {"kind": "listing", "page": page, "title": response.css("title::text").get()}
        for href in response.css("a.product::attr(href)").getall():
            yield response.follow(
                href,
                callback=self.parse_product,
                errback=self.product_missing,
                cb_kwargs={"listing_page": page},
                meta={"from_listing": page},
                priority=10,
            )
        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page, callback=self.parse, meta={"page": page + 1})

    def parse_product(self, response: Response, listing_page: int) -> Iterator[Any]:
        sku = response.url.rsplit("/", 1)[1]
        yield {
            "kind": "product",
            "sku": sku,
            "name": response.css("h1::text").get(),
            "price": response.css(".price::text").get(),
            "listing_page": listing_page,
            "from_listing": response.meta["from_listing"],
        }
        yield scrapy.FormRequest(
            response.urljoin("/reviews"),
            formdata={"product": sku},
            callback=self.parse_reviews,
            cb_kwargs={"sku": sku},
            priority=5,
        )
        # A product already asked for, to another callback: the same request (Scrapy's
        # identity is URL, method and body, not the callback), so it is dropped.
        yield response.follow("/product/p10", callback=self.parse_product_again)
        yield response.follow(f"/stock/{sku}", callback=self.parse_stock, dont_filter=True)

    def parse_reviews(self, response: Response, sku: str) -> Iterator[Any]:
        for text in response.css("li.review::text").getall():
            yield {"kind": "review", "sku": sku, "text": text}
        # Asked again on purpose: dont_filter, so it goes out a second time.
        yield response.follow(
            f"/stock/{sku}", callback=self.parse_stock, cb_kwargs={"again": True}, dont_filter=True
        )

    def parse_stock(self, response: Response, again: bool = False) -> Iterator[Any]:
        yield {"kind": "stock", "path": response.url.split("/", 3)[3], "again": again}

    def parse_product_again(self, response: Response) -> Iterator[Any]:
        yield {"kind": "never", "path": urlsplit(response.url).path}

    def product_missing(self, failure: Failure) -> Iterator[Any]:
        response = failure.value.response
        # "status" is a field of the page's record too: the item is kept whole under "items".
        yield {"kind": "missing", "path": urlsplit(response.url).path, "status": response.status}


class PricePipeline:
    """An item pipeline from the spider's custom_settings: it must keep working."""

    def process_item(self, item: dict[str, Any], spider: scrapy.Spider | None = None) -> Any:
        if item.get("kind") == "product":
            item["price_cents"] = round(float(item["price"]) * 100)
        return item


class LambdaCallbackSpider(scrapy.Spider):
    name = "shop_lambda"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        yield response.follow("/list?page=2", callback=lambda r: None)


class ObjectMetaSpider(scrapy.Spider):
    name = "shop_meta"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        yield response.follow("/list?page=2", meta={"session": object()})


class BrokenSettingsSpider(scrapy.Spider):
    """custom_settings Scrapy cannot apply: its Crawler cannot even be built."""

    name = "shop_broken_settings"
    custom_settings = ["not", "a", "mapping"]  # type: ignore[assignment]
