"""URL identity: canonical form, 64-bit fingerprints, origins and shard ownership.

Pure and deterministic (workflows call it), so no DNS and no clocks. w3lib does the heavy
lifting of canonicalization (case, percent-encoding, ``.``/``..``, sorted query, no fragment);
on top of it we drop default ports and refuse anything that is not http(s) with a host.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
from collections.abc import Iterable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

__all__ = [
    "DomainSet",
    "canonicalize",
    "fingerprint",
    "request_fingerprint",
    "host_in_domains",
    "hostname",
    "in_allowed_domains",
    "is_forbidden_ip",
    "is_private_ip",
    "looks_like_sitemap",
    "origin",
    "origin_from_key",
    "origin_key",
    "shard_of",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_URL_LENGTH = 4096

# Link-local and cloud metadata: refused even with allow_private_networks.
_ALWAYS_FORBIDDEN = [ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")]


def canonicalize(url: str, strip_params: tuple[str, ...] = ()) -> str | None:
    """The canonical form used for dedup and output, or None if the URL is not crawlable.
    Query parameters whose names match one of ``strip_params`` (glob patterns, any case:
    ``utm_*``, ``sessionid``) are dropped, so tracking and session ids do not multiply pages."""
    url = url.strip()
    if not url or len(url) > _MAX_URL_LENGTH:
        return None
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        if scheme not in _DEFAULT_PORTS or not host or any(_unprintable(c) for c in host):
            return None
        if parts.username is not None or parts.password is not None:
            return None  # credentials never become part of dedup keys or output
        port = parts.port
        spelled = _host_spelling(host)
        if spelled != host:
            # One spelling per address, so that dedup, scope and the address guard all see
            # the address a resolver would connect to (2852039166 is 169.254.169.254).
            netloc = f"[{spelled}]" if ":" in spelled else spelled
            netloc += f":{port}" if port is not None else ""
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        canonical = canonicalize_url(url)
    except (ValueError, UnicodeError):
        return None
    cparts = urlsplit(canonical)
    chost = cparts.hostname or ""
    # What w3lib made of the host (IDNA, dropped control characters) must still be a host.
    if not chost or any(_unprintable(c) for c in chost):
        return None
    # IDNA may turn a name into an address ('¹' is '1', so 0.0.0.1): spell it again.
    spelled_host = _host_spelling(chost)
    if spelled_host != chost or (port is not None and port == _DEFAULT_PORTS[scheme]):
        netloc = f"[{spelled_host}]" if ":" in spelled_host else spelled_host
        if port is not None and port != _DEFAULT_PORTS[scheme]:
            netloc += f":{port}"
        canonical = urlunsplit((cparts.scheme, netloc, cparts.path, cparts.query, ""))
    if strip_params and cparts.query:
        canonical = _strip_query(canonical, strip_params)
    return canonical


def _strip_query(canonical: str, patterns: tuple[str, ...]) -> str:
    """The canonical URL without the query parameters whose names match a pattern (the
    query is already sorted and encoded one way, so what is left stays canonical)."""
    parts = urlsplit(canonical)
    kept = [
        pair
        for pair in parts.query.split("&")
        if not any(
            fnmatch.fnmatchcase(unquote_plus(pair.split("=", 1)[0]).lower(), pattern.lower())
            for pattern in patterns
        )
    ]
    return urlunsplit(parts._replace(query="&".join(kept)))


def _host_spelling(host: str) -> str:
    """The host as one address is always written: no trailing dot, an IPv4 address in any
    form inet_aton takes (decimal ``2852039166``, hex ``0xA9FEA9FE``, octal
    ``0251.0376.0251.0376``, short forms) as a dotted quad, an IPv6 address compressed (an
    IPv4-mapped one as its IPv4 address). Names are left as they are."""
    host = host.rstrip(".") or host
    if ":" in host:
        try:
            ip = ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return host
        return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else ip.compressed
    ipv4 = _inet_aton(host)
    return host if ipv4 is None else ipv4


def _inet_aton(host: str) -> str | None:
    """The dotted quad of a host written as inet_aton reads IPv4 addresses, else None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        lowered = part.lower()
        base, digits = 10, lowered
        if lowered.startswith("0x"):
            base, digits = 16, lowered[2:]
        elif len(lowered) > 1 and lowered.startswith("0"):
            base, digits = 8, lowered[1:]
        if base == 10 and not (digits.isascii() and digits.isdigit()):
            return None
        try:
            values.append(int(digits, base) if digits else 0)
        except ValueError:
            return None
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return str(ipaddress.IPv4Address(number))


def _unprintable(char: str) -> bool:
    """White space or a control character: no host name has one (w3lib would drop it)."""
    return char.isspace() or not char.isprintable()


def fingerprint(canonical_url: str) -> int:
    """A 64-bit fingerprint: eight bytes a URL in the seen-set, collisions ~n²/2⁶⁵."""
    digest = hashlib.blake2b(canonical_url.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def request_fingerprint(canonical_url: str, method: str = "GET", body: bytes = b"") -> int:
    """Scrapy's request identity (its ``fingerprint``: canonical URL, method, body) in 64 bits;
    a plain GET's is its URL's, so a seen-set of URLs and one of requests agree."""
    if method == "GET" and not body:
        return fingerprint(canonical_url)
    digest = hashlib.blake2b(digest_size=8)
    digest.update(method.encode("ascii", "replace") + b" " + canonical_url.encode("utf-8"))
    digest.update(b"\0" + body)
    return int.from_bytes(digest.digest(), "big", signed=True)


def hostname(url: str) -> str:
    """Lower-case host name without port or brackets."""
    return (urlsplit(url).hostname or "").lower()


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a canonical URL: the unit of politeness and robots.txt."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def origin_key(origin_url: str) -> str:
    """A file-name-safe form of an origin, for store keys."""
    parts = urlsplit(origin_url)
    safe = parts.netloc.replace("[", "").replace("]", "").replace(":", "_")
    return f"{parts.scheme}_{safe}"


def origin_from_key(key: str) -> str:
    """The origin an ``origin_key`` was made from (an IPv6 literal's colons are lost, so its
    shard may differ; the shard that reads it forwards its URLs to their owner)."""
    scheme, _, netloc = key.partition("_")
    host, sep, port = netloc.rpartition("_")
    if sep and port.isdigit():
        netloc = f"{host}:{port}"
    return f"{scheme}://{netloc}"


def shard_of(origin_url: str, shard_count: int) -> int:
    """The shard that owns an origin. Stable across processes (no Python ``hash``)."""
    host = hostname(origin_url)
    digest = hashlib.blake2b(host.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


_SITEMAP_SUFFIXES = (".xml", ".xml.gz", ".rss", ".atom", "sitemap.txt", "sitemap.txt.gz")


def looks_like_sitemap(url: str) -> bool:
    """Whether a seed names a sitemap or feed rather than a page: its path ends in .xml,
    .xml.gz, .rss, .atom or sitemap.txt, or its last segment says sitemap."""
    path = urlsplit(url).path.lower()
    return path.endswith(_SITEMAP_SUFFIXES) or "sitemap" in path.rsplit("/", 1)[-1]


class DomainSet:
    """Allowed domains, looked up by the host and each of its parent domains (a few set
    lookups), not by a walk of every domain: a crawl seeded with 10,000 hosts allows 10,000
    domains, and every link is checked."""

    def __init__(self, domains: Iterable[str]) -> None:
        self._names = set(domains)

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        if host in self._names:
            return True
        dot = host.find(".")
        while dot >= 0:
            if host[dot + 1 :] in self._names:
                return True
            dot = host.find(".", dot + 1)
        return False


def in_allowed_domains(url: str, domains: DomainSet | list[str]) -> bool:
    """Whether the URL's host is one of the domains or a subdomain of one (ports ignored)."""
    allowed = domains if isinstance(domains, DomainSet) else DomainSet(domains)
    return hostname(url) in allowed


def host_in_domains(host: str, domains: list[str]) -> bool:
    """Whether ``host`` is one of the domains or a subdomain of one."""
    return any(host == d or host.endswith("." + d) for d in domains)


def is_private_ip(host: str) -> bool:
    """Private, loopback, link-local or otherwise non-public address literal."""
    ip = ipaddress.ip_address(host.strip("[]"))
    return not ip.is_global


def is_forbidden_ip(address: str, *, allow_private_networks: bool) -> bool:
    """Whether the crawler must refuse to connect to this resolved address."""
    ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # 0.0.0.0 and :: reach the machine itself: never a crawl target.
    if ip.is_unspecified or any(ip in net for net in _ALWAYS_FORBIDDEN):
        return True
    return not ip.is_global and not allow_private_networks
