"""A request waiting to be fetched (``UrlTask``) and the rest of its Scrapy request
(``RequestData``): what the frontier holds, and what messages and batches carry."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shardcrawl.models.base import _Model

__all__ = ["RequestData", "UrlTask"]


class RequestData(_Model):
    """What a Scrapy request carries beyond its URL, depth and priority, so that any worker can
    rebuild it: callback and errback by method name on the spider, their arguments, ``meta``
    (JSON values), headers, and a non-GET's method and body. A plain GET that ``parse``
    handles has none (``UrlTask.request`` is then None), which keeps most payloads small."""

    callback: str | None = Field(default=None, description="spider method; None: parse")
    errback: str | None = None
    cb_kwargs: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    method: str = "GET"
    headers: dict[str, list[str]] = Field(default_factory=dict)
    body_b64: str = Field(default="", description="the body, base64")
    dont_filter: bool = Field(default=False, description="fetched even if seen before")
    request_class: str | None = Field(
        default=None, description="import path of a Request subclass (FormRequest, ...)"
    )


class UrlTask(_Model):
    """A request waiting to be fetched: its canonical URL, what the frontier orders it by, and
    (beyond a plain GET for ``parse``) the rest of the Scrapy request."""

    url: str
    depth: int = 0
    priority: int = 0
    redirects: int = 0
    attempt: int = Field(default=1, ge=1, description="which request of this URL this is")
    request: RequestData | None = None
