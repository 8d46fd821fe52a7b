"""Scrapy settings of a batch: the allotment becomes concurrency, shard-owned features are off."""

from __future__ import annotations

from typing import Any

import pytest

from shardcrawl.activities.scrapy_settings import CAPTURE_MIDDLEWARE, batch_settings, fetch_settings
from shardcrawl.models import BatchRequest, BatchSlice, FetchOptions, UrlTask

REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"


def make_request(
    *, concurrency: int = 3, delay: float = 1.5, fetch: FetchOptions | None = None
) -> BatchRequest:
    return BatchRequest(
        crawl_id="crawl-1",
        shard=0,
        batch_id="s0000-b0000001",
        urls=[UrlTask(url="https://example.com/")],
        slices=[
            BatchSlice(
                origin="https://example.com", count=1, concurrency=concurrency, delay_seconds=delay
            )
        ],
        spider="pages",
        output="out",
        fetch=fetch or FetchOptions(),
    )


@pytest.fixture
def settings() -> dict[str, Any]:
    fetch = FetchOptions(
        user_agent="TestBot/9.9 (+https://bot.example)",
        max_response_bytes=123_456,
        download_timeout_seconds=12.5,
    )
    return batch_settings(make_request(concurrency=3, delay=1.5, fetch=fetch), reactor=REACTOR)


def test_lease_slots_become_concurrency(settings: dict[str, Any]) -> None:
    assert settings["CONCURRENT_REQUESTS"] == 3
    assert settings["CONCURRENT_REQUESTS_PER_DOMAIN"] == 3


@pytest.mark.parametrize("slots", [1, 7, 64])
def test_concurrency_follows_any_lease(slots: int) -> None:
    s = batch_settings(make_request(concurrency=slots), reactor=REACTOR)
    assert s["CONCURRENT_REQUESTS"] == slots
    assert s["CONCURRENT_REQUESTS_PER_DOMAIN"] == slots


def test_per_ip_limit_does_not_override_the_lease(settings: dict[str, Any]) -> None:
    assert settings["CONCURRENT_REQUESTS_PER_IP"] == 0


def test_lease_delay_becomes_download_delay(settings: dict[str, Any]) -> None:
    assert settings["DOWNLOAD_DELAY"] == 1.5


def test_zero_delay_is_zero_download_delay() -> None:
    assert batch_settings(make_request(delay=0.0), reactor=REACTOR)["DOWNLOAD_DELAY"] == 0.0


def test_delay_is_not_randomized(settings: dict[str, Any]) -> None:
    assert not settings["DOWNLOAD_DELAY_JITTER"]


@pytest.mark.parametrize(
    "name",
    [
        "RETRY_ENABLED",
        "REDIRECT_ENABLED",
        "METAREFRESH_ENABLED",
        "ROBOTSTXT_OBEY",
        "COOKIES_ENABLED",
        "AUTOTHROTTLE_ENABLED",
    ],
)
def test_shard_owned_features_are_off(settings: dict[str, Any], name: str) -> None:
    assert settings[name] is False


def test_depth_limit_is_off_and_dupefilter_is_inert(settings: dict[str, Any]) -> None:
    assert settings["DEPTH_LIMIT"] == 0
    assert settings["DUPEFILTER_CLASS"] == "scrapy.dupefilters.BaseDupeFilter"


def test_error_statuses_follow_the_spiders_own_rules(settings: dict[str, Any]) -> None:
    """As in plain Scrapy, a 404 goes to the request's errback (or handle_httpstatus_list
    lets it reach the callback): the batch records every response whatever the spider does."""
    assert "HTTPERROR_ALLOW_ALL" not in settings


def test_fetch_options_set_size_timeout_and_user_agent(settings: dict[str, Any]) -> None:
    assert settings["DOWNLOAD_MAXSIZE"] == 123_456
    assert settings["DOWNLOAD_TIMEOUT"] == 12.5
    assert settings["USER_AGENT"] == "TestBot/9.9 (+https://bot.example)"


def test_default_fetch_options_flow_through() -> None:
    defaults = FetchOptions()
    s = batch_settings(make_request(), reactor=REACTOR)
    assert s["USER_AGENT"] == defaults.user_agent
    assert s["DOWNLOAD_MAXSIZE"] == defaults.max_response_bytes
    assert s["DOWNLOAD_TIMEOUT"] == defaults.download_timeout_seconds


def test_dns_timeout_never_exceeds_download_timeout() -> None:
    short = batch_settings(
        make_request(fetch=FetchOptions(download_timeout_seconds=5.0)), reactor=REACTOR
    )
    assert short["DNS_TIMEOUT"] == 5.0
    long = batch_settings(
        make_request(fetch=FetchOptions(download_timeout_seconds=120.0)), reactor=REACTOR
    )
    assert long["DNS_TIMEOUT"] <= 120.0


def test_capture_middleware_is_registered(settings: dict[str, Any]) -> None:
    assert CAPTURE_MIDDLEWARE == "shardcrawl.activities.batch_capture.BatchCaptureMiddleware"
    assert CAPTURE_MIDDLEWARE in settings["SPIDER_MIDDLEWARES"]
    assert settings["SPIDER_MIDDLEWARES"][CAPTURE_MIDDLEWARE] is not None


def test_capture_middleware_path_imports() -> None:
    from shardcrawl.activities.batch_capture import BatchCaptureMiddleware

    module, _, name = CAPTURE_MIDDLEWARE.rpartition(".")
    assert (module, name) == (BatchCaptureMiddleware.__module__, BatchCaptureMiddleware.__name__)


@pytest.mark.parametrize(
    "reactor",
    [
        REACTOR,
        "twisted.internet.selectreactor.SelectReactor",
        "twisted.internet.epollreactor.EPollReactor",
    ],
)
def test_twisted_reactor_is_what_was_passed(reactor: str) -> None:
    assert batch_settings(make_request(), reactor=reactor)["TWISTED_REACTOR"] == reactor


def test_fetch_settings_have_no_batch_concurrency() -> None:
    s = fetch_settings(FetchOptions(), reactor=REACTOR)
    assert "CONCURRENT_REQUESTS" not in s
    assert "DOWNLOAD_DELAY" not in s
    assert s["TWISTED_REACTOR"] == REACTOR


def test_settings_are_fresh_per_call() -> None:
    first = batch_settings(make_request(concurrency=2), reactor=REACTOR)
    first["SPIDER_MIDDLEWARES"]["x.Y"] = 5
    second = batch_settings(make_request(concurrency=4), reactor=REACTOR)
    assert "x.Y" not in second["SPIDER_MIDDLEWARES"]
    assert first["CONCURRENT_REQUESTS"] == 2


def test_each_host_of_a_batch_gets_its_own_slot() -> None:
    """A many-host batch: each host's allotment is its own download slot; the total is the sum."""
    request = BatchRequest(
        crawl_id="crawl-1",
        shard=0,
        batch_id="s0000-b0000001",
        urls=[UrlTask(url="http://a.example/"), UrlTask(url="http://b.example/1")]
        + [UrlTask(url="https://b.example/2")],
        slices=[
            BatchSlice(origin="http://a.example", count=1, concurrency=4, delay_seconds=0.5),
            BatchSlice(origin="https://B.example", count=2, concurrency=1, delay_seconds=2.0),
        ],
        spider="pages",
        output="out",
        fetch=FetchOptions(),
    )
    s = batch_settings(request, reactor=REACTOR)
    assert s["DOWNLOAD_SLOTS"] == {
        "a.example": {"concurrency": 4, "delay": 0.5, "jitter": 0},
        "b.example": {"concurrency": 1, "delay": 2.0, "jitter": 0},
    }
    assert s["CONCURRENT_REQUESTS"] == 5
    assert s["SCHEDULER_PRIORITY_QUEUE"].endswith("DownloaderAwarePriorityQueue")


def test_slices_must_cover_the_batch() -> None:
    with pytest.raises(ValueError, match="slices count 1 requests, the batch has 2"):
        BatchRequest(
            crawl_id="crawl-1",
            shard=0,
            batch_id="b",
            urls=[UrlTask(url="http://a.example/"), UrlTask(url="http://a.example/2")],
            slices=[BatchSlice(origin="http://a.example", count=1, concurrency=1, delay_seconds=0)],
            spider="pages",
            output="out",
            fetch=FetchOptions(),
        )
