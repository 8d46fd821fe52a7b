"""URL identity: canonical form, fingerprints, shard ownership, scope and address policy."""

from __future__ import annotations

from collections import Counter

import pytest

from shardcrawl.core.urls import (
    canonicalize,
    fingerprint,
    hostname,
    in_allowed_domains,
    is_forbidden_ip,
    is_private_ip,
    origin,
    origin_key,
    shard_of,
)

# -- canonicalize ------------------------------------------------------------------------------


def test_canonicalize_drops_fragment() -> None:
    assert canonicalize("https://example.com/page#section-2") == "https://example.com/page"


def test_canonicalize_lowercases_scheme_and_host_but_not_path() -> None:
    assert canonicalize("HTTPS://WWW.Example.COM/Path/To") == "https://www.example.com/Path/To"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://[2606:4700::1111]:80/a", "http://[2606:4700::1111]/a"),
    ],
)
def test_canonicalize_removes_default_port(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
    ],
)
def test_canonicalize_keeps_non_default_port(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


def test_canonicalize_resolves_dot_segments() -> None:
    assert canonicalize("http://example.com/a/./b/../c/./d") == "http://example.com/a/c/d"


def test_canonicalize_sorts_query_parameters() -> None:
    assert canonicalize("http://example.com/s?b=2&c=3&a=1") == "http://example.com/s?a=1&b=2&c=3"


def test_canonicalize_same_query_in_any_order_is_one_url() -> None:
    assert canonicalize("http://example.com/?x=1&y=2") == canonicalize(
        "http://example.com/?y=2&x=1"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/%7euser", "http://example.com/~user"),
        ("http://example.com/%41", "http://example.com/A"),
        ("http://example.com/%c3%a9", "http://example.com/%C3%A9"),
        ("http://example.com/\u00e9", "http://example.com/%C3%A9"),
        ("http://example.com/a b", "http://example.com/a%20b"),
    ],
)
def test_canonicalize_normalizes_percent_encoding(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


def test_canonicalize_adds_root_path() -> None:
    assert canonicalize("http://example.com") == "http://example.com/"


def test_canonicalize_strips_surrounding_whitespace() -> None:
    assert canonicalize("  http://example.com/a \n") == "http://example.com/a"


def test_canonicalize_is_idempotent() -> None:
    once = canonicalize("HTTP://Example.com:80/a/../b?z=1&a=%7e#f")
    assert once is not None
    assert canonicalize(once) == once


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "mailto:someone@example.com",
        "ftp://example.com/file.txt",
        "tel:+15551234567",
        "data:text/plain;base64,aGVsbG8=",
        "file:///etc/passwd",
    ],
)
def test_canonicalize_refuses_non_http_schemes(url: str) -> None:
    assert canonicalize(url) is None


@pytest.mark.parametrize("url", ["http:///path/only", "https://", "http://:80/", "/relative/path"])
def test_canonicalize_refuses_url_without_host(url: str) -> None:
    assert canonicalize(url) is None


def test_canonicalize_refuses_broken_ipv6_literal() -> None:
    assert canonicalize("http://[::1") is None


@pytest.mark.parametrize("url", ["http://example.com:99999/", "http://example.com:port/"])
def test_canonicalize_refuses_invalid_port(url: str) -> None:
    assert canonicalize(url) is None


def test_canonicalize_refuses_overlong_url() -> None:
    assert canonicalize("http://example.com/" + "a" * 5000) is None


def test_canonicalize_accepts_long_but_not_overlong_url() -> None:
    url = "http://example.com/" + "a" * 1000
    assert canonicalize(url) == url


@pytest.mark.parametrize("url", ["", "   "])
def test_canonicalize_refuses_empty(url: str) -> None:
    assert canonicalize(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/\udcff",
        "http://example.com/\ud800x",
        "http://exa mple.com/",
        "http://example.com/\x00\x01",
        "http://example.com/%zz%",
        "http://\u2603.example/",
        "http://example.com/?q=\U0001f600",
        "http://[zz::1]/",
        "http://a@b@c/",
        "ht!tp://example.com/",
    ],
)
def test_canonicalize_odd_input_does_not_raise(url: str) -> None:
    result = canonicalize(url)
    assert result is None or isinstance(result, str)


def test_canonicalize_treats_userinfo_the_same_with_or_without_default_port() -> None:
    # The same URL spelled with and without its default port must have one canonical form
    # (both refused or both the same string), or dedup and output disagree about it.
    assert canonicalize("http://user:pw@example.com:80/a") == canonicalize(
        "http://user:pw@example.com/a"
    )


# -- fingerprint -------------------------------------------------------------------------------


def test_fingerprint_known_value_is_stable() -> None:
    # blake2b(digest_size=8), big-endian signed: changing the hash breaks every stored seen-set.
    assert fingerprint("https://example.com/") == 1493557592560457051
    assert fingerprint("http://example.com/") == -350646258024731386


def test_fingerprint_fits_signed_64_bits() -> None:
    values = [fingerprint(f"https://example.com/page/{i}") for i in range(2000)]
    assert all(-(2**63) <= v < 2**63 for v in values)
    assert any(v < 0 for v in values)
    assert any(v > 0 for v in values)


def test_fingerprint_differs_for_different_urls() -> None:
    values = {fingerprint(f"https://example.com/page/{i}") for i in range(2000)}
    assert len(values) == 2000


def test_fingerprint_same_for_same_url() -> None:
    assert fingerprint("https://example.com/a?b=1") == fingerprint("https://example.com/a?b=1")


# -- shard_of ----------------------------------------------------------------------------------


def test_shard_of_known_value_is_stable() -> None:
    assert shard_of("https://example.com", 8) == 6
    assert shard_of("https://example.com", 1024) == 614


def test_shard_of_is_in_range() -> None:
    for count in (1, 2, 3, 7, 8, 1024):
        for i in range(200):
            assert 0 <= shard_of(f"http://host{i}.example", count) < count


def test_shard_of_single_shard_is_zero() -> None:
    assert shard_of("https://anything.example", 1) == 0


def test_shard_of_puts_all_ports_and_schemes_of_a_host_on_one_shard() -> None:
    origins = [
        "http://example.com",
        "https://example.com",
        "http://example.com:8080",
        "https://example.com:8443",
        "http://EXAMPLE.com:81",
    ]
    assert len({shard_of(o, 8) for o in origins}) == 1
    assert len({shard_of(o, 1024) for o in origins}) == 1


def test_shard_of_spreads_hosts_over_shards() -> None:
    counts = Counter(shard_of(f"https://host-{i}.example.org", 8) for i in range(1000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) >= 60


# -- in_allowed_domains ------------------------------------------------------------------------


def test_in_allowed_domains_accepts_exact_host() -> None:
    assert in_allowed_domains("https://example.com/a", ["example.com"])


def test_in_allowed_domains_accepts_subdomains() -> None:
    assert in_allowed_domains("https://www.example.com/", ["example.com"])
    assert in_allowed_domains("https://a.b.c.example.com/", ["example.com"])


def test_in_allowed_domains_rejects_suffix_that_is_not_a_subdomain() -> None:
    assert not in_allowed_domains("https://notexample.com/", ["example.com"])
    assert not in_allowed_domains("https://example.com.evil.net/", ["example.com"])


def test_in_allowed_domains_rejects_parent_of_allowed_domain() -> None:
    assert not in_allowed_domains("https://example.com/", ["www.example.com"])


def test_in_allowed_domains_ignores_ports() -> None:
    assert in_allowed_domains("http://example.com:8080/", ["example.com"])
    assert in_allowed_domains("https://sub.example.com:8443/x", ["example.com"])


def test_in_allowed_domains_any_of_several() -> None:
    domains = ["example.com", "example.org"]
    assert in_allowed_domains("https://example.org/", domains)
    assert not in_allowed_domains("https://example.net/", domains)


def test_in_allowed_domains_empty_list_allows_nothing() -> None:
    assert not in_allowed_domains("https://example.com/", [])


# -- origin / origin_key -----------------------------------------------------------------------


def test_origin_is_scheme_host_and_port() -> None:
    assert origin("https://example.com:8443/a/b?c=d") == "https://example.com:8443"
    assert origin("http://example.com/a") == "http://example.com"


def test_origin_distinguishes_scheme_and_port() -> None:
    assert origin("http://example.com/") != origin("https://example.com/")
    assert origin("http://example.com/") != origin("http://example.com:8080/")


def test_origin_key_is_file_name_safe() -> None:
    assert origin_key("https://example.com:8443") == "https_example.com_8443"
    assert origin_key("http://example.com") == "http_example.com"
    key = origin_key("http://[::1]:8080")
    assert not set(key) & set("/:[]")


def test_origin_key_differs_per_origin() -> None:
    origins = ["http://example.com", "https://example.com", "http://example.com:8080"]
    assert len({origin_key(o) for o in origins}) == 3


# -- address policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4", "::1", "[::1]"]
)
def test_is_private_ip_true_for_private_and_loopback(host: str) -> None:
    assert is_private_ip(host)


@pytest.mark.parametrize("host", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_is_private_ip_false_for_public(host: str) -> None:
    assert not is_private_ip(host)


@pytest.mark.parametrize("allow", [False, True])
@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0", "::ffff:169.254.169.254"],
)
def test_link_local_and_metadata_always_forbidden(address: str, allow: bool) -> None:
    assert is_forbidden_ip(address, allow_private_networks=allow)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.5", "192.168.1.1", "172.16.0.1", "::1", "::ffff:127.0.0.1"]
)
def test_private_forbidden_unless_allowed(address: str) -> None:
    assert is_forbidden_ip(address, allow_private_networks=False)
    assert not is_forbidden_ip(address, allow_private_networks=True)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "::ffff:93.184.216.34"])
def test_public_address_allowed(address: str) -> None:
    assert not is_forbidden_ip(address, allow_private_networks=False)
    assert not is_forbidden_ip(address, allow_private_networks=True)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("http://2852039166/", "http://169.254.169.254/"),
        ("http://0xA9FEA9FE/x", "http://169.254.169.254/x"),
        ("http://0xa9.0xfe.0xa9.0xfe/", "http://169.254.169.254/"),
        ("http://0251.0376.0251.0376/", "http://169.254.169.254/"),
        ("http://169.254.43518/", "http://169.254.169.254/"),
        ("http://169.16689662/", "http://169.254.169.254/"),
        ("http://[::ffff:169.254.169.254]/", "http://169.254.169.254/"),
        ("http://[::FFFF:A9FE:A9FE]:8080/", "http://169.254.169.254:8080/"),
        ("http://169.254.169.254./", "http://169.254.169.254/"),
        ("http://169.254.169.254..:80/", "http://169.254.169.254/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://[2001:DB8:0:0::1]/", "http://[2001:db8::1]/"),
        ("http://example.com./a", "http://example.com/a"),
        ("http://0x.example/", "http://0x.example/"),
        ("http://256.1.1.1/", "http://256.1.1.1/"),
    ],
)
def test_every_spelling_of_an_address_canonicalizes_to_one(url: str, canonical: str) -> None:
    assert canonicalize(url) == canonical


@pytest.mark.parametrize(
    "url",
    [
        "http://2852039166/",
        "http://0xA9FEA9FE/",
        "http://0251.0376.0251.0376/",
        "http://[::ffff:169.254.169.254]/",
        "http://169.254.169.254./latest/meta-data/",
        "http://0.0.0.0/",
        "http://0/",
        "http://[::]/",
        "http://[fe80::1%25eth0]/",
    ],
)
def test_odd_spellings_of_forbidden_addresses_are_refused_even_for_intranets(url: str) -> None:
    host = hostname(canonicalize(url) or "")
    assert is_forbidden_ip(host, allow_private_networks=True), host


def test_canonicalize_strips_query_parameters_by_name_or_glob_in_any_case() -> None:
    strip = ("utm_*", "sessionid", "fbclid")
    url = "http://a.test/p?b=2&UTM_Source=x&utm_medium=y&sessionid=abc&a=1&fbclid=z"
    assert canonicalize(url, strip) == "http://a.test/p?a=1&b=2"
    assert canonicalize("http://a.test/p?sessionid=1", strip) == "http://a.test/p"
    assert canonicalize(url) == canonicalize(url, ())
    assert canonicalize(canonicalize(url, strip) or "", strip) == "http://a.test/p?a=1&b=2"


def test_a_name_that_idna_turns_into_an_address_is_spelled_as_that_address() -> None:
    """Found by make fuzz: w3lib's IDNA makes '¹' into '1', which is the address 0.0.0.1;
    canonicalizing again must not change it."""
    assert canonicalize("HTTP://¹") == "http://0.0.0.1/"
    assert canonicalize("http://0.0.0.1/") == "http://0.0.0.1/"
