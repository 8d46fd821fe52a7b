"""Store URLs, apart from the stores: how one is normalized, which are refused, what opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardcrawl.store import FileStore, S3Store, normalize_store_url, open_store

__all__: list[str] = []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///tmp/out", "file:///tmp/out"),
        ("file://localhost/tmp/out", "file:///tmp/out"),
        ("FILE:///tmp/out/", "file:///tmp/out"),
        ("/tmp/out/", "file:///tmp/out"),
        ("/tmp/a/../out", "file:///tmp/out"),
        ("/tmp/a b", "file:///tmp/a%20b"),
        ("file:///tmp/a%20b", "file:///tmp/a%20b"),
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("s3://bucket/some/prefix/", "s3://bucket/some/prefix"),
        ("S3://bucket//some//prefix", "s3://bucket/some/prefix"),
        ("s3://bucket/a#b?c", "s3://bucket/a#b?c"),
    ],
)
def test_normalize_store_url(url: str, expected: str) -> None:
    assert normalize_store_url(url) == expected
    assert normalize_store_url(expected) == expected


@pytest.mark.parametrize("relative", ["out", "out/run-1", "./out", "file:out"])
def test_normalize_resolves_relative_paths(
    relative: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    expected = (tmp_path / relative.removeprefix("file:")).resolve().as_uri()
    assert normalize_store_url(relative) == expected


def test_normalize_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert normalize_store_url("~/out") == (tmp_path / "out").as_uri()


def test_unsupported_scheme_message() -> None:
    with pytest.raises(ValueError) as info:
        normalize_store_url("ftp://x")
    assert str(info.value) == (
        "unsupported store url 'ftp://x': use file://PATH, a directory path or s3://BUCKET/PREFIX"
    )
    with pytest.raises(ValueError, match="unsupported store url"):
        open_store("ftp://x")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("", "empty"),
        ("http://example.org/out", "unsupported store url"),
        ("s3://", "bucket"),
        ("s3:///prefix", "bucket"),
        ("s3:bucket", "malformed"),
        ("s3://bad bucket/x", "bucket"),
        ("s3://bucket/a/../b", r"'\.\.'"),
        ("file://otherhost/tmp/out", "otherhost"),
        ("file:///tmp/out?x=1", "query"),
    ],
)
def test_invalid_store_urls(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        normalize_store_url(url)
    with pytest.raises(ValueError, match=match):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIA:hunter2secret@bucket/x",
        "ftp://me:hunter2secret@x/",
        "file://me:hunter2secret@otherhost/tmp/out",
        "file://me:hunter2secret@localhost/tmp/out?x=1",
    ],
)
def test_url_errors_never_echo_credentials(url: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_store_url(url)
    assert "hunter2secret" not in str(info.value)


def test_open_store_picks_backend_and_uses_canonical_url(tmp_path: Path) -> None:
    local = open_store(f"file://{tmp_path}/out")
    assert isinstance(local, FileStore)
    assert local.url == (tmp_path / "out").as_uri()
    remote = open_store("s3://bucket/p/", s3_endpoint_url="http://user:pw@127.0.0.1:9000")
    assert isinstance(remote, S3Store)
    assert (remote.url, remote.bucket, remote.prefix) == ("s3://bucket/p", "bucket", "p")
    assert remote.endpoint_url == "http://user:pw@127.0.0.1:9000"
    assert "pw" not in repr(remote)


def test_open_store_binds_relative_path_at_open_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("out")
    monkeypatch.chdir("/")
    store.put_bytes("a.txt", b"x")
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"x"
    assert store.url == (tmp_path / "out").as_uri()


def test_open_store_caches_nothing(tmp_path: Path) -> None:
    assert open_store(str(tmp_path)) is not open_store(str(tmp_path))
