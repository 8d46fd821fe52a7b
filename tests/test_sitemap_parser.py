"""Sitemap parsing: every format, every failure as a class, bounded memory, never a raise."""

from __future__ import annotations

import gzip
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from shardcrawl.activities.sitemap_parser import SITEMAP_NS, SitemapReader, parse_sitemap

MB = 1 << 20


def _urlset(entries: str, ns: str = SITEMAP_NS) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{ns}">{entries}</urlset>'.encode()


def test_urlset_entries_keep_their_fields() -> None:
    body = _urlset(
        "<url><loc> http://a.test/1 </loc><lastmod>2026-11-30</lastmod>"
        "<changefreq>daily</changefreq><priority>0.8</priority></url>"
        "<url><loc>http://a.test/2</loc><priority>7</priority></url><url><lastmod>x</lastmod></url>"
    )
    entries, error = parse_sitemap(body, max_bytes=MB)
    assert error is None
    assert [(e.url, e.lastmod, e.changefreq, e.priority) for e in entries] == [
        ("http://a.test/1", "2026-11-30", "daily", 0.8),
        ("http://a.test/2", None, None, None),  # a priority out of range is dropped
    ]


def test_an_index_names_child_sitemaps_gzip_or_not() -> None:
    index = (
        f'<sitemapindex xmlns="{SITEMAP_NS}"><sitemap><loc>http://a.test/s1.xml</loc></sitemap>'
        "<sitemap><loc>http://a.test/s2.xml.gz</loc></sitemap></sitemapindex>"
    ).encode()
    for body in (index, gzip.compress(index)):
        entries, error = parse_sitemap(body, max_bytes=MB)
        assert error is None and all(e.child for e in entries)
        assert [e.url for e in entries] == ["http://a.test/s1.xml", "http://a.test/s2.xml.gz"]


def test_plain_text_rss_and_atom() -> None:
    text = b"http://a.test/1\n\nhttps://a.test/2\r\n"
    assert [e.url for e in parse_sitemap(text, max_bytes=MB)[0]] == [
        "http://a.test/1",
        "https://a.test/2",
    ]
    rss = (
        b'<rss version="2.0"><channel><title>t</title><item><link>http://a.test/p</link>'
        b"<pubDate>Mon, 30 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>"
    )
    (entry,), error = parse_sitemap(rss, max_bytes=MB)
    assert error is None and entry.url == "http://a.test/p" and entry.lastmod
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><link href="http://a.test/q"/>'
        b"<updated>2026-11-30T10:00:00Z</updated></entry></feed>"
    )
    (entry,), error = parse_sitemap(atom, max_bytes=MB)
    assert error is None and entry.url == "http://a.test/q"


def test_what_goes_wrong_is_a_class() -> None:
    cut = _urlset("<url><loc>http://a.test/1</loc></url>").removesuffix(b"</urlset>") + b"<url><l"
    entries, error = parse_sitemap(cut, max_bytes=MB)
    assert error == "malformed" and [e.url for e in entries] == ["http://a.test/1"]
    html = b"<!DOCTYPE html><html><head><title>no</title></head><body>hi</body></html>"
    assert parse_sitemap(html, max_bytes=MB) == ([], "not_a_sitemap")
    other = _urlset("<url><loc>http://a.test/1</loc></url>", ns="http://example.com/ns")
    assert parse_sitemap(other, max_bytes=MB) == ([], "wrong_namespace")
    assert parse_sitemap(b"", max_bytes=MB)[1] == "not_a_sitemap"
    assert parse_sitemap(b"\x1f\x8b\x08garbage", max_bytes=MB)[1] == "malformed"
    assert parse_sitemap(b"<p>some words</p> and then", max_bytes=MB)[1] == "not_a_sitemap"


def test_a_gzip_bomb_is_oversize_and_stays_small_in_memory() -> None:
    bomb = gzip.compress(_urlset("<url><loc>http://a.test/</loc></url>" * 10) + b" " * (300 * MB))
    assert len(bomb) < MB
    tracemalloc.start()
    entries, error = parse_sitemap(bomb, max_bytes=8 * MB)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert error == "oversize" and len(entries) == 10
    assert peak < 4 * MB, peak


def test_a_large_sitemap_streams_without_a_tree() -> None:
    body = _urlset(
        "".join(f"<url><loc>http://a.test/{i}/{'x' * 200}</loc></url>" for i in range(50_000))
    )
    assert len(body) > 10 * MB
    tracemalloc.start()
    count = sum(1 for _ in SitemapReader(body, max_bytes=64 * MB))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 50_000
    assert peak < len(body) // 5, f"peak {peak} for a {len(body)}-byte sitemap"


def test_entities_are_not_expanded() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&x;</loc></url>'
        b"</urlset>"
    )
    entries, _ = parse_sitemap(body, max_bytes=MB)
    assert all("root:" not in e.url for e in entries)


@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(body: bytes) -> None:
    entries, error = parse_sitemap(body, max_bytes=MB)
    assert error is None or isinstance(error, str)
    assert isinstance(entries, list)


@given(st.text(alphabet="<>/ =\"'?!abcdefurlsetmapindexloc:h.-\n", max_size=400))
def test_random_xml_like_text_never_raises(text: str) -> None:
    parse_sitemap(text.encode(), max_bytes=MB)
    parse_sitemap(gzip.compress(text.encode()), max_bytes=MB)
