"""A spider that sets each request's priority from the link (``data-priority``), for the
``priority`` crawl order test."""

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
