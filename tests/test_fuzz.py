"""Property-based tests (hypothesis) of the code that meets the web's input: URLs, HTML and
bytes, robots.txt, response headers, specs. Nothing of it may raise on anything a server or a
user can send; canonical forms are stable.

``make test`` runs the fast profile; ``make fuzz`` runs 10,000 examples a property
(``HYPOTHESIS_PROFILE=fuzz``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protego import Protego
from scrapy import Request
from scrapy.http import HtmlResponse, Response

from shardcrawl.activities.batch import _links, page_record
from shardcrawl.activities.batch_capture import BatchCapture
from shardcrawl.activities.page_capture import FoundRequest, PageCapture
from shardcrawl.core import urls
from shardcrawl.core.errors import SpecError
from shardcrawl.models import BlockSpec, UrlTask
from shardcrawl.models.validation import parse_spec
from shardcrawl.policy.blocks import retry_after_seconds
from shardcrawl.spiders.pages import PagesSpider

settings.register_profile("fast", max_examples=150, deadline=None)
settings.register_profile(
    "fuzz", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

SCHEMES = st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "//", "javascript:"])
HOSTS = st.one_of(
    st.sampled_from(["example.com", "EXAMPLE.com.", "127.0.0.1", "[::1]", "xn--bcher-kva.ch"]),
    st.text(min_size=0, max_size=20),
)
URL_TEXT = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda scheme, host, port, path, query, fragment: (
            f"{scheme}{host}{port}{path}{query}{fragment}"
        ),
        SCHEMES,
        HOSTS,
        st.sampled_from(["", ":80", ":443", ":8080", ":0", ":99999", ":x"]),
        st.text(max_size=40).map(lambda t: "/" + t),
        st.text(max_size=30).map(lambda t: "?" + t if t else ""),
        st.text(max_size=10).map(lambda t: "#" + t if t else ""),
    ),
)
HTML = st.one_of(
    st.binary(max_size=2000),
    st.lists(
        st.one_of(
            st.text(max_size=50),
            URL_TEXT.map(lambda u: f'<a href="{u}">x</a>'),
            URL_TEXT.map(lambda u: f"<base href='{u}'>"),
            st.sampled_from(["<html>", "</a>", "<a href=>", "<title>", "<!--", "<![CDATA["]),
        ),
        max_size=40,
    ).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
)


@given(URL_TEXT)
def test_canonicalize_never_raises_and_is_idempotent(url: str) -> None:
    canonical = urls.canonicalize(url)
    if canonical is not None:
        assert urls.canonicalize(canonical) == canonical
        assert urls.origin(canonical)
        assert 0 <= urls.shard_of(urls.origin(canonical), 7) < 7


@given(URL_TEXT)
def test_equal_canonical_urls_have_equal_fingerprints(url: str) -> None:
    canonical = urls.canonicalize(url)
    if canonical is not None:
        again = urls.canonicalize(canonical)
        assert again is not None
        assert urls.fingerprint(canonical) == urls.fingerprint(again)
        assert urls.request_fingerprint(canonical) == urls.fingerprint(canonical)


def _response(body: bytes, url: str = "http://example.com/a/") -> HtmlResponse:
    request = Request(url, meta={"shardcrawl_url": 0, "depth": 1})
    return HtmlResponse(url, body=body, request=request, headers={"Content-Type": "text/html"})


@given(HTML)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_link_extraction_never_raises_on_any_html(body: bytes) -> None:
    spider = PagesSpider()
    response = _response(body)
    output = list(spider.parse(response))
    page = PageCapture(url=response.url, depth=1, status=200)
    page.links = [FoundRequest(url=r.url) for r in output if isinstance(r, Request)]
    for link in _links([page], ()):
        assert urls.canonicalize(link.url) == link.url


@given(
    body=st.binary(max_size=3000),
    status=st.integers(min_value=100, max_value=999),
    headers=st.dictionaries(
        st.sampled_from(["Location", "Retry-After", "ETag", "Last-Modified", "Content-Type"]),
        st.binary(max_size=60),
        max_size=5,
    ),
)
def test_batch_capture_never_raises_on_any_response(
    body: bytes, status: int, headers: dict[str, bytes]
) -> None:
    capture = BatchCapture(
        [UrlTask(url="http://example.com/a")],
        blocks=BlockSpec(body_markers=["captcha"], challenge_paths=["/challenge"]),
    )
    request = Request("http://example.com/a", meta={"shardcrawl_url": 0})
    response = Response(
        "http://example.com/a", status=status, headers=headers, body=body, request=request
    )
    capture.on_response(response, request)
    record = page_record(capture.pages[0])
    json.dumps(record, default=str)


@given(st.binary(max_size=200))
def test_retry_after_never_raises(value: bytes) -> None:
    from datetime import UTC, datetime

    seconds = retry_after_seconds(value, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert seconds is None or 0.0 <= seconds <= 86_400.0


@given(st.text(max_size=2000), URL_TEXT, st.text(max_size=30))
def test_robots_parsing_never_raises(text: str, url: str, agent: str) -> None:
    rules = Protego.parse(text)
    rules.can_fetch(url or "http://example.com/", agent or "shardcrawl")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
SPEC_FIELDS = st.sampled_from(
    ["seeds", "max_pages", "max_depth", "shards", "output", "delay_seconds", "retry", "blocks"]
    + ["proxies", "spider", "allowed_domains", "batch_size", "concurrency_per_host", "bogus"]
)


@given(st.one_of(JSON, st.dictionaries(SPEC_FIELDS, JSON, max_size=6)))
def test_spec_parsing_only_ever_raises_spec_error(data: Any) -> None:
    try:
        parse_spec(data)
    except SpecError as exc:
        assert str(exc)
