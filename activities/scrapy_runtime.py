"""One Twisted reactor (in a crochet thread) and one CrawlerRunner per worker process.

The reactor cannot be restarted, so it starts once, on first use, and every batch becomes a
``Crawler`` run by the same ``CrawlerRunner``. Activities await a crawl from the worker's asyncio
loop without blocking it: the reactor thread resolves an asyncio future when the crawl ends.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import crochet
from scrapy import Spider
from scrapy.crawler import Crawler, CrawlerRunner
from scrapy.settings import Settings
from scrapy.spiderloader import SpiderLoader

from shardcrawl.activities.address_pins import install as install_resolver
from shardcrawl.core.errors import ConfigError

__all__ = ["CrawlerStartError", "ScrapyRuntime", "UnknownSpiderError"]

SPIDER_MODULES = ["shardcrawl.spiders"]


class UnknownSpiderError(LookupError):
    """The spec names a spider that none of the worker's spider modules has."""


class CrawlerStartError(RuntimeError):
    """Scrapy could not build or start a crawler for the spider (its settings, its __init__):
    the same on every try, so a batch fails at once, with the cause."""


def _check_bindable(address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError as exc:
        raise ConfigError(
            f"bind address {address!r}: this machine cannot send from it ({exc.strerror})"
        ) from None


class ScrapyRuntime:
    """Runs crawls in the process's reactor thread; safe to share between activities."""

    _setup_lock = threading.Lock()
    _started = False

    def __init__(
        self, *, spider_modules: list[str] | None = None, bind_address: str | None = None
    ) -> None:
        """``bind_address``: the local IP every request of this worker goes out from; checked
        here, so a wrong one stops the worker instead of failing every URL it fetches."""
        if bind_address:
            _check_bindable(bind_address)
        self.bind_address = bind_address
        modules = spider_modules or SPIDER_MODULES
        try:
            self._spider_loader = SpiderLoader.from_settings(Settings({"SPIDER_MODULES": modules}))
        except ImportError as exc:
            raise ConfigError(
                f"SHARDCRAWL_SPIDER_MODULES={','.join(modules)!r}: cannot import {exc.name or ''}"
                f" ({exc})"
            ) from None
        self._runner: CrawlerRunner | None = None
        self.reactor_path = ""

    def spider_names(self) -> list[str]:
        return sorted(self._spider_loader.list())

    def spider_class(self, name: str) -> type[Spider]:
        try:
            return self._spider_loader.load(name)
        except KeyError:
            known = ", ".join(self.spider_names()) or "none"
            raise UnknownSpiderError(f"unknown spider {name!r} (known: {known})") from None

    def _ensure_started(self) -> None:
        with self._setup_lock:
            if not ScrapyRuntime._started:
                crochet.setup()
                ScrapyRuntime._started = True
        if self._runner is None:
            from twisted.internet import reactor

            self.reactor_path = f"{type(reactor).__module__}.{type(reactor).__name__}"
            # Before any crawler: every connection of this process resolves through it.
            self._in_reactor(lambda: install_resolver(reactor))
            self._runner = self._in_reactor(
                lambda: CrawlerRunner({"TWISTED_REACTOR": self.reactor_path})
            )

    @staticmethod
    def _in_reactor(fn: Callable[[], Any]) -> Any:
        return crochet.run_in_reactor(fn)().wait(timeout=30)

    def reactor(self) -> str:
        """The installed reactor's import path, for Scrapy's TWISTED_REACTOR setting."""
        self._ensure_started()
        return self.reactor_path

    async def crawl(
        self,
        spidercls: type[Spider],
        settings: dict[str, Any],
        *,
        spider_kwargs: dict[str, Any] | None = None,
        heartbeat: Callable[[], None],
        heartbeat_seconds: float = 2.0,
    ) -> None:
        """Run one crawl to its end, calling ``heartbeat`` meanwhile; cancelling stops it."""
        self._ensure_started()
        assert self._runner is not None
        runner = self._runner
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        holder: dict[str, Crawler] = {}

        def settle(result: Any) -> None:
            def apply() -> None:
                if done.done():
                    return
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(None)

            loop.call_soon_threadsafe(apply)

        def start() -> None:
            # Whatever building or starting the crawler raises ends the wait with it, instead
            # of the batch heartbeating until its timeout.
            try:
                merged = Settings()
                merged.setdict(settings, priority="cmdline")
                crawler = Crawler(spidercls, merged)
                holder["crawler"] = crawler
                deferred = runner.crawl(crawler, **(spider_kwargs or {}))
            except Exception as exc:
                settle(CrawlerStartError(f"{spidercls.__name__}: {type(exc).__name__}: {exc}"))
                return
            deferred.addCallbacks(lambda _: settle(None), lambda f: settle(f.value))

        crochet.run_in_reactor(start)()
        try:
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(done), timeout=heartbeat_seconds)
                    return
                except TimeoutError:
                    heartbeat()
        except asyncio.CancelledError:
            crawler = holder.get("crawler")
            if crawler is not None:
                crochet.run_in_reactor(lambda: crawler.stop())()
            raise
