"""Runs a spider with plain single-process Scrapy, as its author would without shardcrawl, and
writes its items as JSON lines: the reference the request-model tests compare against.

``python -m tests.plain_scrapy MODULES SPIDER START_URL OUT``
"""

from __future__ import annotations

import sys

from scrapy.crawler import CrawlerProcess


def main() -> None:
    modules, spider, start, out = sys.argv[1:5]
    process = CrawlerProcess(
        {
            "SPIDER_MODULES": modules.split(","),
            "FEEDS": {out: {"format": "jsonlines"}},
            "LOG_LEVEL": "WARNING",
            "TELNETCONSOLE_ENABLED": False,
        }
    )
    process.crawl(spider, start=start)
    process.start()


if __name__ == "__main__":
    main()
