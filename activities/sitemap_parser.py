"""Sitemaps read as streams: XML ``urlset`` and ``sitemapindex``, plain text (a URL a line),
RSS 2.0 and Atom feeds, gzip or not, at bounded memory whatever their size.

lxml's ``iterparse`` hands each ``<url>`` (or ``<sitemap>``, ``<item>``, ``<entry>``) over when
it closes, and the element is cleared at once, so a 50,000-URL, 50 MB sitemap never becomes a
tree. Decompressed bytes are counted as they are read: past ``max_bytes`` the sitemap is
refused as ``oversize`` (a gzip bomb expands no further). Entities are not resolved and
nothing is fetched by the parser (no XXE).

What goes wrong is a class, never an exception: ``malformed`` (XML that breaks off; the entries
before the break are kept), ``not_a_sitemap`` (an HTML page, any other XML), ``wrong_namespace``
(a ``urlset`` outside the sitemap namespace), ``oversize``.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from lxml import etree

__all__ = ["SitemapEntry", "SitemapError", "SitemapReader", "parse_sitemap"]

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
# Namespaces that real sitemaps use for the same schema (Google's old one).
_SITEMAP_NAMESPACES = frozenset({SITEMAP_NS, "http://www.google.com/schemas/sitemap/0.84"})
_ATOM_NS = "http://www.w3.org/2005/Atom"
_READ = 64 * 1024


@dataclass(frozen=True)
class SitemapEntry:
    """One entry: a page (``child`` False) or a nested sitemap of an index (``child`` True)."""

    url: str
    child: bool = False
    lastmod: str | None = None
    changefreq: str | None = None
    priority: float | None = None


class SitemapError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class _Capped(io.RawIOBase):
    """A stream that refuses to give more than ``limit`` bytes (decompressed, if gzip)."""

    def __init__(self, source: IO[bytes], limit: int) -> None:
        self._source = source
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(min(len(buffer), _READ))
        if len(data) > self._left:
            raise SitemapError("oversize", "the sitemap expands past its size limit")
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _opened(body: bytes, max_bytes: int) -> io.BufferedReader:
    raw: IO[bytes] = (
        gzip.GzipFile(fileobj=io.BytesIO(body))  # type: ignore[assignment]
        if body[:2] == b"\x1f\x8b"
        else io.BytesIO(body)
    )
    return io.BufferedReader(_Capped(raw, max_bytes), buffer_size=_READ)


class SitemapReader:
    """Iterate for the sitemap's entries; then ``error`` holds what went wrong, if anything.
    Iterating never raises."""

    def __init__(self, body: bytes, *, max_bytes: int) -> None:
        self._body = body
        self._max_bytes = max_bytes
        self.error: str | None = None

    def __iter__(self) -> Iterator[SitemapEntry]:
        try:
            stream = _opened(self._body, self._max_bytes)
            head = stream.peek(512)[:512].lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()
            if not head:
                raise SitemapError("not_a_sitemap", "an empty document")
            if head.startswith(b"<"):
                yield from _xml_entries(stream)
            else:
                yield from _text_entries(stream)
        except SitemapError as exc:
            self.error = exc.kind
        except etree.XMLSyntaxError as exc:
            # lxml's own bounds (a 10 MB text node, ...) are size limits too.
            self.error = "oversize" if "Resource limit exceeded" in str(exc) else "malformed"
        except (OSError, EOFError, zlib.error, UnicodeError):
            self.error = "malformed"


def parse_sitemap(body: bytes, *, max_bytes: int) -> tuple[list[SitemapEntry], str | None]:
    """All of a (small) sitemap's entries and its error class, if any."""
    reader = SitemapReader(body, max_bytes=max_bytes)
    entries = list(reader)
    return entries, reader.error


def _text_entries(stream: IO[bytes]) -> Iterator[SitemapEntry]:
    for line in stream:
        url = line.strip().decode("utf-8", "replace")
        if url.startswith(("http://", "https://")):
            yield SitemapEntry(url=url)
        elif url and not url.startswith("#"):
            raise SitemapError("not_a_sitemap", "a line that is not a URL")


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _xml_entries(stream: IO[bytes]) -> Iterator[SitemapEntry]:
    parser = etree.iterparse(
        stream,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        recover=False,
        huge_tree=False,
    )
    root: etree._Element | None = None
    kind = ""
    for event, element in parser:
        namespace, local = _split(element.tag) if isinstance(element.tag, str) else ("", "")
        if root is None:
            root = element
            kind = _kind_of(namespace, local)
            continue
        if event != "end":
            continue
        entry = _entry(kind, namespace, local, element)
        if entry is not None:
            yield entry
            element.clear()
            # Drop the cleared siblings too, so no parent keeps a list of empty ones.
            parent = element.getparent()
            while parent is not None and element.getprevious() is not None:
                del parent[0]


def _kind_of(namespace: str, local: str) -> str:
    if local in ("urlset", "sitemapindex"):
        if namespace not in _SITEMAP_NAMESPACES:
            raise SitemapError("wrong_namespace", f"<{local}> in namespace {namespace!r}")
        return local
    if local == "rss" and not namespace:
        return "rss"
    if local == "feed" and namespace == _ATOM_NS:
        return "atom"
    raise SitemapError("not_a_sitemap", f"the document is <{local}>, not a sitemap or feed")


def _child_text(element: etree._Element, name: str, namespace: str) -> str | None:
    found = element.find(f"{{{namespace}}}{name}" if namespace else name)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _entry(kind: str, namespace: str, local: str, element: etree._Element) -> SitemapEntry | None:
    if kind == "urlset" and local == "url":
        loc = _child_text(element, "loc", namespace)
        if loc is None:
            return None
        return SitemapEntry(
            url=loc,
            lastmod=_child_text(element, "lastmod", namespace),
            changefreq=_child_text(element, "changefreq", namespace),
            priority=_priority(_child_text(element, "priority", namespace)),
        )
    if kind == "sitemapindex" and local == "sitemap":
        loc = _child_text(element, "loc", namespace)
        return None if loc is None else SitemapEntry(url=loc, child=True)
    if kind == "rss" and local == "item":
        link = _child_text(element, "link", "")
        if link is None:
            return None
        return SitemapEntry(url=link, lastmod=_child_text(element, "pubDate", ""))
    if kind == "atom" and local == "entry":
        link = element.find(f"{{{_ATOM_NS}}}link")
        href = link.get("href") if link is not None else None
        if not href:
            return None
        return SitemapEntry(url=href.strip(), lastmod=_child_text(element, "updated", _ATOM_NS))
    return None


def _priority(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and 0.0 <= value <= 1.0 else None
