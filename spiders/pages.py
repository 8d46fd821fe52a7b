"""The default spider: records each HTML page's title and follows every link on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import scrapy
from scrapy.http import HtmlResponse, Response
from scrapy.linkextractors import LinkExtractor

__all__ = ["PagesSpider"]


class PagesSpider(scrapy.Spider):
    name = "pages"
    link_extractor = LinkExtractor(unique=True, canonicalize=False, deny_extensions=[])

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, HtmlResponse) or not 200 <= response.status < 300:
            return
        title = response.css("title::text").get()
        yield {"title": title.strip() if title else None}
        for link in self.link_extractor.extract_links(response):
            yield scrapy.Request(link.url)
