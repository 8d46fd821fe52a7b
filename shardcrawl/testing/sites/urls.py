"""The site's URLs as a crawler reads them: page identity, href resolution, deliberate breakage."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

__all__ = ["canonical_page_url", "is_optional_url"]

_SKIP_SCHEMES = ("javascript:", "mailto:", "tel:")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def canonical_page_url(host: str, path_with_query: str) -> str:
    """Identity of a page as recorded by the crawler (agrees with w3lib's
    ``canonicalize_url`` for generated pages): lower-case host, sorted query,
    no fragment."""
    path, _, _frag = path_with_query.partition("#")
    path, _, query = path.partition("?")
    pairs = sorted(tuple(p.partition("=")[::2]) for p in query.split("&") if p)
    q = "&".join(f"{k}={v}" for k, v in pairs)
    return f"http://{host.lower()}{path or '/'}" + (f"?{q}" if q else "")


def is_optional_url(url: str) -> bool:
    """True for URLs a crawler may or may not record: 404s reached through the
    deliberately broken ``/p/%ZZ`` and invalid-UTF-8 links of ``/bad/html``."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return True
    return path.lower().startswith("/p/%") or (path.startswith("/bad/") and path != "/bad/html")


def resolve_href(base: str, href: str) -> str | None:
    """Absolute URL for ``href`` on ``base``; None for links a crawler skips."""
    href = href.strip()
    if not href or href.lower().startswith(_SKIP_SCHEMES):
        return None
    if _BAD_PERCENT.search(href) or any("\udc80" <= c <= "\udcff" for c in href):
        return None  # broken: see is_optional_url
    try:
        url = urljoin(base, href)
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.netloc:
        return None
    return url
