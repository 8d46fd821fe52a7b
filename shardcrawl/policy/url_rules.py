"""The spec's URL rules: which discovered URLs a crawl follows, beyond its allowed domains.

``exclude`` patterns win; when ``include`` patterns are given, a URL must match one. Both are
regular expressions searched in the canonical URL. Rules apply to what the crawl discovers
(links, redirects, sitemap entries), not to the seeds the user gave. Pure and deterministic:
the shard's engine holds one and counts, per rule, what it filtered.
"""

from __future__ import annotations

import re

__all__ = ["UrlRules"]

INCLUDE = "include"


class UrlRules:
    def __init__(self, include: list[str], exclude: list[str]) -> None:
        self._include = [re.compile(p) for p in include]
        self._exclude = [(f"exclude[{i}]", re.compile(p)) for i, p in enumerate(exclude)]

    def __bool__(self) -> bool:
        return bool(self._include or self._exclude)

    def rejects(self, url: str) -> str | None:
        """The rule that filters the URL out (``exclude[N]``, or ``include`` when it matches
        none of them), or None if the crawl may follow it."""
        for name, pattern in self._exclude:
            if pattern.search(url):
                return name
        if self._include and not any(p.search(url) for p in self._include):
            return INCLUDE
        return None
