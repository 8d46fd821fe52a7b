"""Spiders for the request-model tests, loaded by workers through SHARDCRAWL_SPIDER_MODULES
(as a user's own Scrapy project package would be)."""
