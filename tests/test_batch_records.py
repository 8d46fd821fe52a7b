"""What a batch turns its captures into: failure classes, output records, links, outcomes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
)
from twisted.internet import error as txerror

from shardcrawl.activities.batch import _links, _outcome, page_record
from shardcrawl.activities.fetch_failures import classify_failure
from shardcrawl.activities.page_capture import FoundRequest, PageCapture
from shardcrawl.activities.previous_crawl import change_of, conditions
from shardcrawl.models import Link

FETCHED_AT = 1_700_000_000.123  # 2023-11-14T22:13:20.123Z

# -- classify_failure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (CannotResolveHostError("no such host"), "dns"),
        (txerror.DNSLookupError("no such host"), "dns"),
        (DownloadConnectionRefusedError("refused"), "connection_refused"),
        (txerror.ConnectionRefusedError(), "connection_refused"),
        (DownloadTimeoutError("slow"), "timeout"),
        (txerror.TimeoutError(), "timeout"),
        (txerror.TCPTimedOutError(), "timeout"),
        (DownloadCancelledError("too big"), "oversize"),
    ],
)
def test_classify_failure_known_classes(exc: BaseException, expected: str) -> None:
    assert classify_failure(exc) == expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("x"), "error:ValueError"),
        (KeyError("k"), "error:KeyError"),
        (RuntimeError(), "error:RuntimeError"),
    ],
)
def test_classify_failure_other_exceptions_name_their_type(
    exc: BaseException, expected: str
) -> None:
    assert classify_failure(exc) == expected


def test_classify_failure_uses_the_most_specific_class() -> None:
    # Twisted's refused and timeout errors are ConnectErrors too; the specific class must win.
    assert classify_failure(txerror.ConnectionRefusedError()) != classify_failure(
        txerror.ConnectError()
    )
    assert classify_failure(txerror.TimeoutError()) != classify_failure(txerror.ConnectError())


# -- page_record ---------------------------------------------------------------------------------


def capture(**kwargs: object) -> PageCapture:
    base: dict[str, object] = {
        "url": "https://example.com/a",
        "depth": 2,
        "status": 200,
        "fetched_at": FETCHED_AT,
        "content_type": "text/html",
        "size_bytes": 512,
    }
    base.update(kwargs)
    base["links"] = [FoundRequest(url=u) for u in base.get("links", [])]  # type: ignore[attr-defined]
    return PageCapture(**base)  # type: ignore[arg-type]


def test_page_record_base_fields() -> None:
    record = page_record(capture())
    assert record["url"] == "https://example.com/a"
    assert record["status"] == 200
    assert record["depth"] == 2
    assert record["fetched_at"] == "2023-11-14T22:13:20.123Z"
    assert record["content_type"] == "text/html"
    assert record["size_bytes"] == 512


def test_page_record_base_fields_come_first() -> None:
    record = page_record(capture(items=[{"title": "T"}]))
    assert list(record)[:4] == ["url", "status", "depth", "fetched_at"]


def test_page_record_fetched_at_is_iso_8601_utc_with_z() -> None:
    stamp = page_record(capture())["fetched_at"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", stamp)
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == UTC.utcoffset(None)
    assert abs(parsed.timestamp() - FETCHED_AT) < 0.001


def test_page_record_no_redirect_field_without_location() -> None:
    assert "redirect_to" not in page_record(capture())


def test_page_record_redirect_to_for_3xx_with_location() -> None:
    record = page_record(capture(status=301, location="https://example.com/moved"))
    assert record["status"] == 301
    assert record["redirect_to"] == "https://example.com/moved"


def test_page_record_keeps_every_item_under_items_in_one_shape() -> None:
    one = [{"title": "Hello", "links_found": 3}]
    assert page_record(capture(items=one))["items"] == one
    assert "title" not in page_record(capture(items=one)), "an item is never merged"
    several = [{"title": "one", "url": "https://example.com/x"}, {"title": "two"}]
    record = page_record(capture(items=several))
    assert record["items"] == several
    assert record["url"] == "https://example.com/a"
    clash = [{"url": "https://evil.example/", "status": 999, "fetched_at": "yesterday"}]
    record = page_record(capture(items=clash))
    assert (record["url"], record["status"]) == ("https://example.com/a", 200)
    assert record["fetched_at"] == "2023-11-14T22:13:20.123Z"
    assert record["items"] == clash
    assert page_record(capture())["items"] == []


def test_page_record_without_items_has_only_page_fields() -> None:
    assert set(page_record(capture())) == {
        "url",
        "status",
        "depth",
        "fetched_at",
        "content_type",
        "size_bytes",
        "items",
    }


def test_page_record_never_includes_the_body() -> None:
    record = page_record(capture(body=b"<html>secret</html>"))
    assert "body" not in record
    assert all(b"secret" not in str(v).encode() for v in record.values())


# -- _links --------------------------------------------------------------------------------------


def test_links_are_canonicalized_at_next_depth() -> None:
    pages = [capture(depth=1, links=["HTTPS://Example.com:443/b/../c?z=1&a=2#frag"])]
    assert _links(pages) == [Link(url="https://example.com/c?a=2&z=1", depth=2)]


def test_links_drop_uncrawlable_urls() -> None:
    raw = [
        "javascript:void(0)",
        "mailto:someone@example.com",
        "tel:+15551234567",
        "ftp://example.com/f",
        "https://example.com/ok",
    ]
    assert _links([capture(depth=0, links=raw)]) == [Link(url="https://example.com/ok", depth=1)]


def test_links_keep_one_entry_per_url_at_smallest_depth() -> None:
    pages = [
        capture(
            url="https://example.com/deep",
            depth=4,
            links=["https://example.com/t", "https://example.com/u"],
        ),
        capture(url="https://example.com/shallow", depth=1, links=["https://example.com/t#x"]),
        capture(
            url="https://example.com/mid",
            depth=2,
            links=["https://example.com/t", "https://example.com/t"],
        ),
    ]
    links = _links(pages)
    by_url = {link.url: link.depth for link in links}
    assert len(links) == len(by_url) == 2
    assert by_url == {"https://example.com/t": 2, "https://example.com/u": 5}


def test_links_of_pages_without_links_is_empty() -> None:
    assert _links([capture(), capture(url="https://example.com/b")]) == []


# -- _outcome ------------------------------------------------------------------------------------


def test_outcome_of_fetched_page() -> None:
    outcome = _outcome(capture(status=200), 0, 1)
    assert (outcome.url, outcome.status, outcome.error, outcome.content_type) == (
        "https://example.com/a",
        200,
        None,
        "text/html",
    )
    assert outcome.redirect_to is None


def test_outcome_of_failed_page_carries_error() -> None:
    outcome = _outcome(capture(status=None, error="timeout", content_type=None), 0, 1)
    assert outcome.status is None
    assert outcome.error == "timeout"


def test_outcome_redirect_target_is_canonical() -> None:
    outcome = _outcome(
        capture(status=302, location="HTTPS://Example.com:443/next?b=1&a=2#top"), 0, 1
    )
    assert outcome.redirect_to == "https://example.com/next?a=2&b=1"


def test_outcome_drops_uncrawlable_redirect_target() -> None:
    assert (
        _outcome(capture(status=302, location="ftp://example.com/file"), 0, 1).redirect_to is None
    )


@pytest.mark.parametrize(
    ("status", "content_hash", "previous", "change"),
    [
        (200, "h1", None, "new"),
        (304, None, {"status": 200, "content_hash": "h1"}, "unchanged"),
        (200, "h1", {"status": 200, "content_hash": "h1"}, "unchanged"),
        (200, "h2", {"status": 200, "content_hash": "h1"}, "changed"),
        (301, None, {"status": 200, "content_hash": "h1"}, "changed"),
        (404, None, {"status": 200, "content_hash": "h1"}, "gone"),
        (410, None, {"status": 200}, "gone"),
    ],
)
def test_a_page_against_the_previous_crawl(status, content_hash, previous, change):
    assert change_of(status, content_hash, previous) == change


def test_only_pages_with_validators_are_asked_for_conditionally():
    previous = {
        "http://a/1": {"etag": '"x"', "last_modified": "Wed, 21 Oct 2026 07:28:00 GMT"},
        "http://a/2": {"content_hash": "h"},
    }
    assert conditions(previous, ["http://a/1", "http://a/2", "http://a/3"]) == {
        "http://a/1": {
            "If-None-Match": '"x"',
            "If-Modified-Since": "Wed, 21 Oct 2026 07:28:00 GMT",
        }
    }
