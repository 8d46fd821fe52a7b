"""The bytes the server sends for each request: every page's status, content type and body."""

from __future__ import annotations

import html

from shardcrawl.testing.sites.graph import SiteConfig, build_site, normalize_path, page_links

__all__ = ["HTML_TYPE", "render"]

HTML_TYPE = "text/html; charset=utf-8"
_ROBOTS = b"User-agent: *\nDisallow: /private/\n"
_NOT_FOUND = (
    b'<!DOCTYPE html><html><head><meta charset="utf-8"><title>404 Not Found</title>'
    b"</head><body><h1>Not Found</h1></body></html>"
)


def _html(title: str, hrefs: list[str]) -> bytes:
    items = "".join(
        f'<li><a href="{html.escape(h, quote=True)}">link {k}</a></li>\n'
        for k, h in enumerate(hrefs)
    )
    t = html.escape(title)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{t}</title>'
        f"</head>\n<body><h1>{t}</h1>\n<ul>\n{items}</ul></body></html>\n"
    ).encode("utf-8", "surrogateescape")


def _bad_html(title: str, hrefs: list[str]) -> bytes:
    good = html.escape(hrefs[0], quote=True)
    return (
        (
            f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<body><div><p>broken <b>markup <i>here\n<a href="{good}">good link</a>\n'
            '<a href="javascript:alert(1)">js</a> <a href="mailto:x@y">mail</a>\n'
            '<a href="http://[::1">broken ipv6</a> <a href="/p/%ZZ">bad escape</a>\n'
            '<a href="tel:123">phone</a>\n'
        ).encode()
        + b'<a href="/bad/\xff\xfe">raw bytes</a>\n<p>garbage \xc3\x28 \xa0\xa1 \x80'
        b"<table><tr><td>cell<div></span></table\n<!-- unterminated comment? no -->\n<p"
    )


def render(config: SiteConfig, host: str, path_with_query: str) -> tuple[int, str, bytes]:
    """Status, content type and body for a request to ``host`` (a config host)."""
    site = build_site(config)
    host = host.lower()
    key = (host, path_with_query)
    hit = site.cache.get(key)
    if hit is not None:
        return hit
    result = _render(config, host, path_with_query)
    if not path_with_query.startswith("/trap/") and len(site.cache) < 200_000:
        site.cache[key] = result
    return result


def _render(config: SiteConfig, host: str, target: str) -> tuple[int, str, bytes]:
    path = normalize_path(config, target) if host in config.hosts else None
    if path is None or path.startswith("/missing/"):
        return 404, HTML_TYPE, _NOT_FOUND
    title = f"{host} {path}"
    if path == "/robots.txt":
        return 200, "text/plain", _ROBOTS
    if path == "/files/blob.bin":
        fake = b'\n<a href="/p/99999">not a link</a>\n'
        body = bytes(range(256)) + fake + bytes(range(255, -1, -1))
        return 200, "application/octet-stream", body
    if path == "/files/doc.pdf":
        body = (
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n"
            b'(<a href="/p/99998">) \n%%EOF\n'
        )
        return 200, "application/pdf", body
    hrefs = page_links(config, host, path) or []
    if path == "/bad/html":
        return 200, HTML_TYPE, _bad_html(title, hrefs)
    return 200, HTML_TYPE, _html(title, hrefs)
