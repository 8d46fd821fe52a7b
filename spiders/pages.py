"""The default spider: records each HTML page's title and follows every link on it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import scrapy
from scrapy.http import HtmlResponse, Response
from scrapy.linkextractors import LinkExtractor
from scrapy.utils.response import get_base_url

__all__ = ["PagesSpider"]

_BASE_TAG = re.compile(rb"<base\b[^>]*(?:>|$)", re.IGNORECASE)


class PagesSpider(scrapy.Spider):
    name = "pages"
    link_extractor = LinkExtractor(unique=True, canonicalize=False, deny_extensions=[])

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, HtmlResponse) or not 200 <= response.status < 300:
            return
        response = _with_usable_base(response)
        title = response.css("title::text").get()
        yield {"title": title.strip() if title else None}
        for link in self.link_extractor.extract_links(response):
            yield scrapy.Request(link.url)


def _with_usable_base(response: HtmlResponse) -> HtmlResponse:
    """The page, less an invalid <base href> (a bad port, a broken IPv6 literal), which
    browsers ignore and which would otherwise make every selector on the page raise."""
    try:
        get_base_url(response)
    except ValueError:
        return response.replace(body=_BASE_TAG.sub(b"", response.body))
    return response
