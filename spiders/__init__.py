"""Spiders: ordinary Scrapy spiders. Add a module here with a ``scrapy.Spider`` subclass that has
a ``name``, and name it in the crawl spec (``spider: NAME``). Yield items (dicts or Items) for a
page and ``Request``s (``response.follow``) for its links; shardcrawl decides which links are
fetched, when and by which worker. Start URLs and ``allowed_domains`` are not used: the batch is.
"""
