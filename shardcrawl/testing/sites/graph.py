"""Deterministic multi-host test web site: link graph and ground truth (``rendering`` has
its pages' bytes, ``urls`` how a crawler reads their hrefs).

Pure (no I/O) so tests can compute what a correct crawl must record without a
server, and the server (``shardcrawl.testing.sites.server``) can answer from the same
source of truth.

Pages on every host ``H`` (``N = pages_per_host``, ``Q = max(1, N // 10)``):

* ``/`` and ``/p/{i}`` for ``1 <= i < N``: ``/p/i`` links ``/p/{i+1}`` (the last
  one links ``/``) plus random others; ``/`` of host 0 links ``/`` of every other
  host, so everything is reachable from host 0's ``/``.
* ``/q/{j}?a={j}&b={j+1}`` for ``1 <= j <= Q`` (any parameter order is served;
  identity ignores the order). ``/`` links ``/q/1``; ``/q/j`` links ``/q/{j+1}``.

Link variants (``variants=True``); each resolves to an existing page:

* fragment: ``/p/3#frag7``
* reordered query: ``/q/1?b=2&a=1``
* relative: ``./p/3`` and ``p/3`` (from ``/``), ``../p/3`` and ``./3`` (from
  ``/p/i`` and ``/q/j``), ``../../p/3`` (from ``/d/sub/page``)
* upper-case scheme: ``HTTP://127.0.0.2:8001/p/3``
* protocol-relative: ``//127.0.0.2:8001/p/3``; absolute same-host ``http://H/p/3``
* upper-case host: cross-host links to a ``localhost:PORT`` host are always
  written ``http://LOCALHOST:PORT/...``
* ``/d/sub/page`` (linked from every ``/``) exercising ``../../`` forms.
  Host 0's ``/`` carries one of every variant.

Extras (``extras=True``), on every host, all linked from ``/``:

* ``/robots.txt``: ``User-agent: *`` / ``Disallow: /private/``; ``/private/{i}``
  is linked from ``/`` and from ``/p/i`` when ``i % 10 == 5`` (never fetch).
* ``/trap/{n}`` links ``/trap/{n+1}`` forever (cut it with a depth limit).
* ``/files/blob.bin`` (application/octet-stream, body contains
  ``<a href="/p/99999">``) and ``/files/doc.pdf`` (application/pdf, body contains
  ``<a href="/p/99998">``): fetched, never parsed for links.
* ``/bad/html``: malformed HTML with garbage bytes, ``javascript:``, ``mailto:``,
  ``tel:``, ``http://[::1`` (broken IPv6), ``/p/%ZZ``, a raw invalid UTF-8 href
  (``/bad/\\xff\\xfe``) and one good link ``/p/2`` (or ``/``).
* ``/missing/{i}``: linked from ``/`` (``i=0``) and ``/p/i`` when ``i % 10 == 7``;
  answers 404 with an HTML body without links (a fetched page).

The ``/p/%ZZ`` and invalid UTF-8 links are "broken": :func:`reachable_pages`
skips them, yet a crawler that fetches them (and gets 404) is not wrong; use
:func:`urls.is_optional_url` to tolerate them.
"""

from __future__ import annotations

import functools
import random
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from shardcrawl.testing.sites.urls import canonical_page_url, resolve_href

__all__ = [
    "SiteConfig",
    "canonical_page_url",
    "reachable_pages",
    "page_paths",
    "page_links",
]

_BAD_UTF8_HREF = "/bad/\udcff\udcfe"  # surrogateescape for raw bytes ff fe


@dataclass(frozen=True)
class SiteConfig:
    """Shape of the generated site; equal configs render byte-identical sites."""

    hosts: tuple[str, ...]
    pages_per_host: int
    links_per_page: int = 5
    cross_host_ratio: float = 0.3
    seed: int = 1
    variants: bool = True
    extras: bool = True
    delay_ms: int = 0

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("at least one host is required")
        if self.pages_per_host < 1:
            raise ValueError("pages_per_host must be >= 1")
        object.__setattr__(self, "hosts", tuple(h.lower() for h in self.hosts))

    @property
    def query_pages(self) -> int:
        """Number of ``/q/{j}`` pages per host."""
        return max(1, self.pages_per_host // 10)


# --------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class _Link:
    host: str  # target host (config spelling)
    path: str  # target path with canonical query


class _Site:
    """Link structure of one config plus a render cache."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.cache: dict[tuple[str, str], tuple[int, str, bytes]] = {}
        self.hrefs: dict[tuple[str, str], list[str]] = {}
        rng = random.Random(config.seed)
        for hi, host in enumerate(config.hosts):
            for path in _base_paths(config):
                targets = self._targets(rng, hi, path)
                self.hrefs[(host, path)] = self._write(rng, host, path, targets)
            if config.variants:
                self.hrefs[(host, "/d/sub/page")] = self._sub_page(host)

    # -- link targets
    def _random_target(self, rng: random.Random, hi: int) -> _Link:
        cfg = self.config
        host = cfg.hosts[hi]
        if len(cfg.hosts) > 1 and rng.random() < cfg.cross_host_ratio:
            host = cfg.hosts[(hi + 1 + rng.randrange(len(cfg.hosts) - 1)) % len(cfg.hosts)]
        if rng.random() < 0.15:
            return _Link(host, _q_path(1 + rng.randrange(cfg.query_pages)))
        return _Link(host, _p_path(rng.randrange(cfg.pages_per_host)))

    def _targets(self, rng: random.Random, hi: int, path: str) -> list[_Link]:
        cfg, host, n = self.config, self.config.hosts[hi], self.config.pages_per_host
        out: list[_Link] = []
        if path == "/":
            out.append(_Link(host, _p_path(1 if n > 1 else 0)))
            out.append(_Link(host, _q_path(1)))
            if hi == 0:
                out += [_Link(h, "/") for h in cfg.hosts[1:]]
            if cfg.variants:
                out.append(_Link(host, "/d/sub/page"))
            if cfg.extras:
                out += [
                    _Link(host, p)
                    for p in (
                        "/trap/0",
                        "/private/0",
                        "/files/blob.bin",
                        "/files/doc.pdf",
                        "/bad/html",
                        "/missing/0",
                    )
                ]
            extra = cfg.links_per_page - 1
        elif path.startswith("/q/"):
            j = int(path[3:].partition("?")[0])
            nxt = _q_path(j + 1) if j < cfg.query_pages else "/"
            out += [_Link(host, nxt), _Link(host, _p_path(min(j, n - 1)))]
            extra = cfg.links_per_page - 2
        else:
            i = int(path[3:])
            out.append(_Link(host, _p_path(i + 1 if i + 1 < n else 0)))
            if cfg.extras and i % 10 == 5:
                out.append(_Link(host, f"/private/{i}"))
            if cfg.extras and i % 10 == 7:
                out.append(_Link(host, f"/missing/{i}"))
            extra = cfg.links_per_page - 1
        out += [self._random_target(rng, hi) for _ in range(max(0, extra))]
        return out

    # -- href spelling
    def _abs(self, link: _Link, scheme: str = "http") -> str:
        netloc = link.host
        if self.config.variants and netloc.startswith("localhost"):
            netloc = netloc.upper()
        return f"{scheme}://{netloc}{link.path}"

    def _main_href(self, host: str, link: _Link) -> str:
        return link.path if link.host == host else self._abs(link)

    def _variants(self, host: str, page: str, link: _Link) -> list[str]:
        """All alternative spellings of ``link`` valid on ``page``."""
        out = [
            f"{self._main_href(host, link)}#frag{len(link.path)}",
            self._abs(link, "HTTP"),
            f"//{link.host}{link.path}",
        ]
        if link.host.startswith("localhost"):
            out.append(f"http://{link.host.upper()}{link.path}")
        if "?" in link.path:
            base, _, query = link.path.partition("?")
            out.append(f"{base}?{'&'.join(reversed(query.split('&')))}")
        if link.host == host:
            out.append(f"http://{host}{link.path}")
            depth = page.partition("?")[0].count("/") - 1
            out.append(("./" if depth == 0 else "../" * depth) + link.path[1:])
            if depth == 0 and link.path != "/":
                out.append(link.path[1:])
            if depth == 1 and link.path.startswith("/p/") and page.startswith("/p/"):
                out.append("./" + link.path[3:])
        return out

    def _write(self, rng: random.Random, host: str, page: str, targets: list[_Link]) -> list[str]:
        hrefs = [self._main_href(host, t) for t in targets]
        if not self.config.variants:
            return hrefs
        if page == "/" and host == self.config.hosts[0]:
            showcase = [t for t in targets if t.path.startswith(("/p/", "/q/"))]
            showcase += [t for t in targets if t.host != host][:1]
            for t in showcase:
                hrefs += self._variants(host, page, t)
        for t in targets:
            followable = t.path.startswith(("/p/", "/q/", "/d/")) or t.path == "/"
            if followable and rng.random() < 0.25:
                hrefs.append(rng.choice(self._variants(host, page, t)))
        return hrefs

    def _sub_page(self, host: str) -> list[str]:
        last = min(3, self.config.pages_per_host - 1)
        return [
            "../../",
            f"../../p/{last}" if last else "../../",
            "../sub/page#self",
            "../../q/1?b=2&a=1",
            "/d/sub/page",
        ]


def _p_path(i: int) -> str:
    return "/" if i == 0 else f"/p/{i}"


def _q_path(j: int) -> str:
    return f"/q/{j}?a={j}&b={j + 1}"


def _base_paths(config: SiteConfig) -> list[str]:
    return [_p_path(i) for i in range(config.pages_per_host)] + [
        _q_path(j) for j in range(1, config.query_pages + 1)
    ]


@functools.lru_cache(maxsize=16)
def build_site(config: SiteConfig) -> _Site:
    return _Site(config)


def page_paths(config: SiteConfig) -> list[str]:
    """Paths (canonical query) of the ordinary HTML pages present on every host."""
    extra = ["/d/sub/page"] if config.variants else []
    return _base_paths(config) + extra


def page_links(config: SiteConfig, host: str, path_with_query: str) -> list[str] | None:
    """Exact hrefs written in a page (unescaped; raw bytes as surrogates), or
    None for pages whose links must not be followed (non-HTML, 404, unknown)."""
    site = build_site(config)
    host = host.lower()
    if host not in config.hosts:
        return None
    path = normalize_path(config, path_with_query)
    if path is None:
        return None
    if path in {"/files/blob.bin", "/files/doc.pdf", "/robots.txt"} or path.startswith("/missing/"):
        return None
    if (host, path) in site.hrefs:
        return site.hrefs[(host, path)]
    if path.startswith("/trap/"):
        n = int(path[6:])
        return [f"/trap/{n + 1}", "/"]
    if path.startswith("/private/"):
        return ["/", "/p/1" if config.pages_per_host > 1 else "/"]
    if path == "/bad/html":
        good = "/p/2" if config.pages_per_host > 2 else "/"
        return [
            good,
            "javascript:alert(1)",
            "mailto:x@y",
            "http://[::1",
            "/p/%ZZ",
            "tel:123",
            _BAD_UTF8_HREF,
        ]
    return None


def normalize_path(config: SiteConfig, path_with_query: str) -> str | None:
    """Map a request target to its canonical page path, None if not a page."""
    path, _, query = path_with_query.partition("#")[0].partition("?")
    if path.startswith("/q/") and path[3:].isdigit():
        j = int(path[3:])
        want = sorted([f"a={j}", f"b={j + 1}"])
        if 1 <= j <= config.query_pages and sorted(query.split("&")) == want:
            return _q_path(j)
        return None
    if query:
        return None
    if path == "/" or (
        path.startswith("/p/")
        and path[3:].isdigit()
        and 0 < int(path[3:]) < config.pages_per_host
        and path[3] != "0"
    ):
        return path
    if config.variants and path == "/d/sub/page":
        return path
    if not config.extras:
        return None
    if path in {"/robots.txt", "/files/blob.bin", "/files/doc.pdf", "/bad/html"}:
        return path
    for prefix in ("/trap/", "/private/", "/missing/"):
        rest = path[len(prefix) :]
        if path.startswith(prefix) and rest.isdigit() and (rest == "0" or rest[0] != "0"):
            return path
    return None


# --------------------------------------------------------------------------- truth


def reachable_pages(
    config: SiteConfig,
    seeds: list[str],
    *,
    max_depth: int,
    allowed_hosts: set[str] | None = None,
    obey_robots: bool = True,
) -> dict[str, int]:
    """Canonical URL -> shortest depth of every page a correct crawl records.

    Seeds are depth 0 and always included. Links of pages at ``max_depth``, of
    non-HTML pages and of 404s are not followed. ``allowed_hosts`` holds
    ``host:port`` or bare host names; links to hosts not served are dropped.
    """
    allowed = {h.lower() for h in allowed_hosts} if allowed_hosts is not None else None
    depths: dict[str, int] = {}
    queue: deque[tuple[str, str, int]] = deque()
    for seed in seeds:
        parts = urlsplit(seed)
        target = parts.path or "/"
        target += f"?{parts.query}" if parts.query else ""
        canon = canonical_page_url(parts.netloc, target)
        if canon not in depths:
            depths[canon] = 0
            queue.append((parts.netloc.lower(), target, 0))
    while queue:
        host, target, depth = queue.popleft()
        if depth >= max_depth:
            continue
        base = f"http://{host}{target}"
        for href in page_links(config, host, target) or []:
            url = resolve_href(base, href)
            if url is None:
                continue
            parts = urlsplit(url)
            netloc = parts.netloc.lower()
            if netloc not in config.hosts:
                continue
            if allowed is not None and netloc not in allowed and parts.hostname not in allowed:
                continue
            if obey_robots and config.extras and parts.path.startswith("/private/"):
                continue
            nxt = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            canon = canonical_page_url(netloc, nxt)
            if canon not in depths:
                depths[canon] = depth + 1
                queue.append((netloc, nxt, depth + 1))
    return depths
