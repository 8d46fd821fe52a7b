"""Baseline for the benchmarks: the same spider in plain single-process Scrapy (no Temporal).

Arguments: seeds domains per_host max_depth [concurrent_items (Scrapy's default 100)
[concurrent_requests (default per_host x the number of domains)]].

seeds and domains are comma-separated lists, or ``@PATH``: a file of them, one or a
comma-separated list a line (thousands of seeds do not fit one command-line argument).

Same reactor, robots.txt obeyed, per-host concurrency and depth limit as the shardcrawl run;
Scrapy's own dupefilter and OffsiteMiddleware do the dedup and scoping; the seeds go through
the dupefilter too (Scrapy's default start requests skip it, so a seed a page links to, such as
a host's ``/``, would be fetched twice, which shardcrawl does not do). Prints one JSON line:
pages, seconds and cpu (CPU seconds) over the crawl itself, and cpu_total, which also counts
the start-up (imports) before it.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from scrapy import Request
from scrapy.crawler import CrawlerProcess

from shardcrawl.spiders.pages import PagesSpider


class BenchSpider(PagesSpider):
    name = "bench_pages"

    def __init__(self, seeds: list[str], domains: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.start_urls = seeds
        self.allowed_domains = domains

    async def start(self) -> AsyncIterator[Request]:
        for url in self.start_urls:
            yield Request(url)  # through the dupefilter, unlike Scrapy's default


def _list(arg: str) -> list[str]:
    """A comma-separated list, or ``@PATH`` for a file of them."""
    text = Path(arg[1:]).read_text(encoding="utf-8").replace("\n", ",") if arg[:1] == "@" else arg
    return [item.strip() for item in text.split(",") if item.strip()]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    seeds, domains = _list(sys.argv[1]), _list(sys.argv[2])
    per_host, max_depth = int(sys.argv[3]), int(sys.argv[4])
    concurrent_items = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    concurrent_requests = int(sys.argv[6]) if len(sys.argv) > 6 else per_host * len(domains)
    process = CrawlerProcess(
        {
            "TWISTED_REACTOR": "twisted.internet.epollreactor.EPollReactor",
            "CONCURRENT_REQUESTS": concurrent_requests,
            "CONCURRENT_REQUESTS_PER_DOMAIN": per_host,
            "ROBOTSTXT_OBEY": True,
            "RETRY_ENABLED": False,
            "COOKIES_ENABLED": False,
            "DEPTH_LIMIT": max_depth,
            "LOG_LEVEL": "WARNING",
            "TELNETCONSOLE_ENABLED": False,
            "HTTPERROR_ALLOW_ALL": True,
            "CONCURRENT_ITEMS": concurrent_items,
        }
    )
    crawler = process.create_crawler(BenchSpider)
    start, cpu_start = time.monotonic(), _cpu()
    process.crawl(crawler, seeds=seeds, domains=domains)
    process.start()
    elapsed, cpu_total = time.monotonic() - start, _cpu()
    stats = crawler.stats.get_stats()
    pages = stats.get("response_received_count", 0) - stats.get("robotstxt/response_count", 0)
    print(
        json.dumps(
            {
                "pages": pages,
                "seconds": elapsed,
                "cpu": cpu_total - cpu_start,
                "cpu_total": cpu_total,
                "errors": stats.get("downloader/exception_count", 0),
            }
        )
    )


if __name__ == "__main__":
    main()
