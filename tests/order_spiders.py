"""Spiders for tests/test_url_rules.py: one that sets each request's priority from the link
(``data-priority``), for the ``priority`` crawl order test, and one whose callback raises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import scrapy
from scrapy.http import Response


class PriorityPagesSpider(scrapy.Spider):
    name = "priority_pages"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        yield {"title": response.css("title::text").get()}
        for anchor in response.css("a"):
            priority = int(anchor.attrib.get("data-priority", "0"))
            yield response.follow(anchor.attrib["href"], priority=priority)


class RaisingPagesSpider(scrapy.Spider):
    """Yields each page's title, follows its links, then raises on ``/p/3``."""

    name = "raising_pages"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        yield {"title": response.css("title::text").get()}
        for anchor in response.css("a"):
            yield response.follow(anchor.attrib["href"])
        if response.url.endswith("/p/3"):
            raise KeyError("no such thing")
