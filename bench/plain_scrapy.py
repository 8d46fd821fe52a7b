"""Baseline for bench_spine.py: the same spider in plain single-process Scrapy (no Temporal).

Arguments: seeds domains per_host max_depth [concurrent_items (Scrapy's default 100)].

Same reactor, robots.txt obeyed, per-host concurrency and depth limit as the shardcrawl run;
Scrapy's own dupefilter and OffsiteMiddleware do the dedup and scoping. Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from scrapy.crawler import CrawlerProcess

from spiders.pages import PagesSpider


class BenchSpider(PagesSpider):
    name = "bench_pages"

    def __init__(self, seeds: list[str], domains: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.start_urls = seeds
        self.allowed_domains = domains


def main() -> None:
    seeds, domains = sys.argv[1].split(","), sys.argv[2].split(",")
    per_host, max_depth = int(sys.argv[3]), int(sys.argv[4])
    concurrent_items = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    process = CrawlerProcess(
        {
            "TWISTED_REACTOR": "twisted.internet.epollreactor.EPollReactor",
            "CONCURRENT_REQUESTS": per_host * len(domains),
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
    start = time.monotonic()
    process.crawl(crawler, seeds=seeds, domains=domains)
    process.start()
    elapsed = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = crawler.stats.get_stats()
    pages = stats.get("response_received_count", 0) - stats.get("robotstxt/response_count", 0)
    print(json.dumps({"pages": pages, "seconds": elapsed, "cpu": usage.ru_utime + usage.ru_stime}))


if __name__ == "__main__":
    main()
