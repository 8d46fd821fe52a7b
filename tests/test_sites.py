"""The generated test site: ground truth, rendering and the logging server.

Other tests trust ``reachable_pages`` and the server log as the oracle for crawl
correctness and politeness, so these tests pin both down, including a small
reference crawl of the live server that must match ``reachable_pages`` exactly.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from protego import Protego
from scrapy.http import HtmlResponse
from scrapy.linkextractors import LinkExtractor
from w3lib.url import canonicalize_url

from shardcrawl.core.ports import free_port
from shardcrawl.testing.sites.graph import SiteConfig, page_links, page_paths, reachable_pages
from shardcrawl.testing.sites.process import SiteProcess, max_overlap
from shardcrawl.testing.sites.rendering import render
from shardcrawl.testing.sites.urls import canonical_page_url, is_optional_url

__all__: list[str] = []

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
EXTRACTOR = LinkExtractor(deny_extensions=[])
_SITE_IPS = ("127.0.0.2", "127.0.0.3", "localhost")


def _config(port: int, pages_per_host: int = 20, delay_ms: int = 0) -> SiteConfig:
    hosts = tuple(f"{ip}:{port}" for ip in _SITE_IPS)
    return SiteConfig(hosts=hosts, pages_per_host=pages_per_host, delay_ms=delay_ms)


def _get(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with OPENER.open(req, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def _wait_log(site: SiteProcess, since: float, n: int) -> list[dict]:
    """Log entries of requests started after ``since`` once ``n`` are flushed."""
    deadline = time.monotonic() + 2
    while True:
        entries = [e for e in site.requests() if e["start"] >= since]
        if len(entries) >= n or time.monotonic() > deadline:
            time.sleep(0.25)  # a late extra entry would be a bug: let it show
            return [e for e in site.requests() if e["start"] >= since]
        time.sleep(0.05)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteProcess]:
    log = tmp_path_factory.mktemp("site") / "access.jsonl"
    with SiteProcess(_config(free_port("127.0.0.2", also=_SITE_IPS)), log) as proc:
        yield proc


CFG = SiteConfig(hosts=("127.0.0.2:8001", "127.0.0.3:8001", "localhost:8001"), pages_per_host=20)
H0, H1, H2 = CFG.hosts
SEED = f"http://{H0}/"


# ------------------------------------------------------------------ pure graph


def test_render_is_deterministic_and_titles_unique() -> None:
    titles = set()
    other = SiteConfig(hosts=CFG.hosts, pages_per_host=20)  # equal, separately built
    for host in CFG.hosts:
        for path in page_paths(CFG):
            status, ctype, body = render(CFG, host, path)
            assert (status, ctype) == (200, "text/html; charset=utf-8")
            title = body.split(b"<title>")[1].split(b"</title>")[0].decode()
            assert title == f"{host} {path}".replace("&", "&amp;")
            titles.add(title)
            assert render(other, host, path) == (status, ctype, body)
    assert len(titles) == len(CFG.hosts) * len(page_paths(CFG))
    seeded = SiteConfig(hosts=CFG.hosts, pages_per_host=20, seed=2)
    assert render(seeded, H0, "/p/3") != render(CFG, H0, "/p/3")


def test_reachable_excludes_private_and_fake_links_includes_404_and_files() -> None:
    pages = reachable_pages(CFG, [SEED], max_depth=6)
    assert not [u for u in pages if "/private/" in u]
    assert not [u for u in pages if u.endswith(("/p/99999", "/p/99998"))]
    assert not [u for u in pages if is_optional_url(u)]
    for host in CFG.hosts:
        for path in (
            "/missing/0",
            "/files/blob.bin",
            "/files/doc.pdf",
            "/bad/html",
            "/d/sub/page",
            "/q/1?a=1&b=2",
        ):
            assert f"http://{host}{path}" in pages
    assert render(CFG, H0, "/missing/0")[0] == 404
    assert b'<a href="/p/99999">' in render(CFG, H0, "/files/blob.bin")[2]
    assert render(CFG, H0, "/files/blob.bin")[1] == "application/octet-stream"
    assert render(CFG, H0, "/files/doc.pdf")[1] == "application/pdf"
    assert f"http://{H0}/private/0" in reachable_pages(CFG, [SEED], max_depth=6, obey_robots=False)


def test_trap_is_cut_at_max_depth_and_depths_are_shortest() -> None:
    pages = reachable_pages(CFG, [SEED], max_depth=4)
    traps = {u: d for u, d in pages.items() if u.startswith(f"http://{H0}/trap/")}
    assert traps == {f"http://{H0}/trap/{n}": n + 1 for n in range(4)}
    assert max(pages.values()) == 4
    assert pages[SEED] == 0 and pages[f"http://{H1}/"] == 1 and pages[f"http://{H2}/"] == 1
    assert reachable_pages(CFG, [SEED], max_depth=0) == {SEED: 0}
    only0 = reachable_pages(CFG, [SEED], max_depth=6, allowed_hosts={H0})
    assert only0 and all(urlsplit(u).netloc == H0 for u in only0)
    assert set(only0) == set(reachable_pages(CFG, [SEED], max_depth=6, allowed_hosts={"127.0.0.2"}))


@pytest.mark.parametrize("variants,extras", [(True, True), (False, False)])
def test_every_page_reachable_from_host0_root(variants: bool, extras: bool) -> None:
    cfg = SiteConfig(hosts=CFG.hosts, pages_per_host=20, variants=variants, extras=extras)
    pages = reachable_pages(cfg, [SEED], max_depth=10_000 if not extras else 60)
    for host in cfg.hosts:
        for path in page_paths(cfg):
            assert canonical_page_url(host, path) in pages
    if not extras:
        assert all(
            urlsplit(u).path.startswith(("/p/", "/q/")) or urlsplit(u).path == "/" for u in pages
        )
        assert render(cfg, H0, "/robots.txt")[0] == 404


def test_variants_present_and_canonical_url_agrees_with_w3lib() -> None:
    hrefs = [
        h for host in CFG.hosts for p in page_paths(CFG) for h in page_links(CFG, host, p) or []
    ]
    for needle in (
        "#frag",
        "?b=2&a=1",
        "./p/",
        "../p/",
        "../../p/",
        "HTTP://127.0.0.2:",
        "http://LOCALHOST:",
        "//127.0.0.3:",
    ):
        assert any(needle in h for h in hrefs), needle
    checked = 0
    for host in CFG.hosts:
        for path in page_paths(CFG) + ["/bad/html", "/trap/3"]:
            assert canonical_page_url(host, path) == canonicalize_url(f"http://{host}{path}")
            body = render(CFG, host, path)[2]
            response = HtmlResponse(url=f"http://{host}{path}", body=body)
            for link in EXTRACTOR.extract_links(response):
                parts = urlsplit(link.url)
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                target += f"#{parts.fragment}" if parts.fragment else ""
                assert canonical_page_url(parts.netloc, target) == canonicalize_url(link.url)
                checked += 1
    assert checked > 300
    assert (
        canonical_page_url("LOCALHOST:8001", "/q/1?b=2&a=1#x")
        == "http://localhost:8001/q/1?a=1&b=2"
    )


def test_rendered_html_links_match_link_graph_for_scrapy() -> None:
    """What Scrapy extracts from the HTML is what reachable_pages follows."""
    from shardcrawl.testing.sites.urls import resolve_href

    for host in CFG.hosts:
        for path in page_paths(CFG) + ["/bad/html", "/trap/2", "/private/5"]:
            base = f"http://{host}{path}"
            response = HtmlResponse(url=base, body=render(CFG, host, path)[2])
            got = {canonicalize_url(link.url) for link in EXTRACTOR.extract_links(response)}
            got = {u for u in got if not is_optional_url(u)}
            want = set()
            for href in page_links(CFG, host, path) or []:
                url = resolve_href(base, href)
                if url is not None:
                    want.add(canonicalize_url(url))
            assert got == want, (host, path)
    bad = HtmlResponse(url=f"http://{H0}/bad/html", body=render(CFG, H0, "/bad/html")[2])
    optional = [link.url for link in EXTRACTOR.extract_links(bad) if is_optional_url(link.url)]
    assert len(optional) == 2


def test_max_overlap_sweep() -> None:
    assert max_overlap([]) == 0
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_overlap([(0, 10), (1, 2), (1.5, 3), (2.5, 4)]) == 3


# ------------------------------------------------------------------ live server


def test_server_pages_robots_404_and_log(site: SiteProcess) -> None:
    h0, h1, h2 = site.config.hosts
    since = time.time()
    status, ctype, body = _get(site.seed_url)
    assert (status, ctype) == (200, "text/html; charset=utf-8")
    assert f"<title>{h0} /</title>".encode() in body
    assert body == render(site.config, h0, "/")[2]
    status, _, body = _get(f"http://{h2.upper()}/p/3")
    assert status == 200 and f"<title>{h2} /p/3</title>".encode() in body
    status, _, body = _get(f"http://{h1}/q/2?b=3&a=2")
    assert status == 200 and f"<title>{h1} /q/2?a=2&amp;b=3</title>".encode() in body
    assert _get(f"http://{h1}/robots.txt")[:2] == (200, "text/plain")
    assert b"Disallow: /private/" in _get(f"http://{h1}/robots.txt")[2]
    assert _get(f"http://{h0}/missing/0")[0] == 404
    assert _get(f"http://{h0}/nope")[0] == 404
    assert _get(f"http://{h0}/q/2?a=2")[0] == 404
    assert _get(f"http://{h0}/files/doc.pdf")[1] == "application/pdf"
    status, _, body = _get(f"http://{h0}/p/3", method="HEAD")
    assert status == 200 and body == b""

    entries = _wait_log(site, since, 10)
    assert len(entries) == 10
    assert [(e["host"], e["path"], e["status"]) for e in entries[:4]] == [
        (h0, "/", 200),
        (h2, "/p/3", 200),
        (h1, "/q/2?b=3&a=2", 200),
        (h1, "/robots.txt", 200),
    ]
    assert (h0, "/missing/0", 404) in [(e["host"], e["path"], e["status"]) for e in entries]
    for e in entries:
        assert time.time() - 60 < e["start"] <= e["end"] <= time.time()


def test_server_keep_alive_and_connection_close(site: SiteProcess) -> None:
    h0 = site.config.hosts[0]
    ip, port = h0.split(":")
    conn = http.client.HTTPConnection(ip, int(port), timeout=5)
    try:
        conn.request("GET", "/p/1")
        first = conn.getresponse()
        assert first.status == 200 and first.getheader("Connection") == "keep-alive"
        assert int(first.getheader("Content-Length") or -1) == len(first.read())
        sock = conn.sock
        conn.request("GET", "/p/2", headers={"Connection": "close"})
        second = conn.getresponse()
        assert conn.sock is sock or conn.sock is None  # reused, then closed by server
        assert second.getheader("Connection") == "close" and second.read()
        assert second.will_close
    finally:
        conn.close()


def test_concurrency_is_measured_from_log(tmp_path: Path) -> None:
    cfg = _config(free_port("127.0.0.2", also=_SITE_IPS), delay_ms=200, pages_per_host=5)
    with SiteProcess(cfg, tmp_path / "access.jsonl") as proc:
        h0, h1, _ = cfg.hosts
        barrier = threading.Barrier(4)
        results: list[int] = []

        def fetch(i: int) -> None:
            barrier.wait()
            results.append(_get(f"http://{h0}/p/{i}")[0])

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in (1, 2):
            assert _get(f"http://{h1}/p/{i}")[0] == 200
        time.sleep(0.3)
        assert results == [200] * 4
        assert len(proc.requests()) == 6
        assert all(e["end"] - e["start"] >= 0.19 for e in proc.requests())
        assert proc.max_concurrency_by_host() == {h0: 4, h1: 1}
        pid = proc.pid
    assert proc.pid is None and pid is not None


def test_reference_crawl_matches_reachable_pages(site: SiteProcess) -> None:
    """A minimal polite BFS crawler over the live server finds exactly the truth."""
    cfg, max_depth = site.config, 3
    since = time.time()
    robots = {h: Protego.parse(_get(f"http://{h}/robots.txt")[2].decode()) for h in cfg.hosts}
    found: dict[str, int] = {canonicalize_url(site.seed_url): 0}
    queue = deque([(site.seed_url, 0)])
    while queue:
        url, depth = queue.popleft()
        status, ctype, body = _get(url)
        if depth == max_depth or status != 200 or not ctype.startswith("text/html"):
            continue
        for link in EXTRACTOR.extract_links(HtmlResponse(url=url, body=body)):
            canon = canonicalize_url(link.url)
            netloc = urlsplit(canon).netloc
            if (
                netloc not in cfg.hosts
                or canon in found
                or is_optional_url(canon)
                or not robots[netloc].can_fetch(canon, "*")
            ):
                continue
            found[canon] = depth + 1
            queue.append((link.url, depth + 1))
    assert found == reachable_pages(cfg, [site.seed_url], max_depth=max_depth)
    paths = [e["path"] for e in _wait_log(site, since, len(found) + 3)]
    assert len(paths) == len(found) + 3
    assert not [p for p in paths if p.startswith(("/private/", "/p/9999"))]
