"""The output store contract on the file and S3 (moto) backends, then what each adds."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

import shardcrawl.store.s3 as s3_store_module
from shardcrawl.core.errors import ShardcrawlError, StoreError, StoreUnavailable
from shardcrawl.core.ports import free_port
from shardcrawl.store import (
    TMP_PREFIX,
    FileStore,
    S3Store,
    Store,
    normalize_store_url,
    open_store,
)

__all__: list[str] = []

S3_PREFIX = "some/prefix"
BAD_KEYS = ["", "/abs/key", "a/../b", "..", "a//b", "a/", "./a", "a\\b", f"items/{TMP_PREFIX}x"]


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The same contract tests run against every backend."""
    if request.param == "file":
        return open_store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_s3_endpoint")
    return open_store(f"s3://{bucket}/{S3_PREFIX}", s3_endpoint_url=endpoint)


@pytest.fixture
def s3_client(moto_s3_endpoint: str, aws_test_env: dict[str, str]) -> Any:
    """A raw client, to look at the bucket behind the store's back."""
    return boto3.session.Session().client(
        "s3", endpoint_url=moto_s3_endpoint, region_name="us-east-1"
    )


# --------------------------------------------------------------------------- both backends


def test_store_satisfies_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert store.url == normalize_store_url(store.url)


@pytest.mark.parametrize("data", [b'{"url": "https://example.org/\xc3\xa9"}\n', b"\x00\xff", b""])
def test_put_get_roundtrip(store: Store, data: bytes) -> None:
    store.put_bytes("items/shard-0001.jsonl", data)
    assert store.get_bytes("items/shard-0001.jsonl") == data


def test_overwrite_replaces(store: Store) -> None:
    store.put_bytes("items/shard-0001.jsonl", b"first attempt, longer content\n")
    store.put_bytes("items/shard-0001.jsonl", b"retry\n")
    assert store.get_bytes("items/shard-0001.jsonl") == b"retry\n"
    assert store.list_keys("") == ["items/shard-0001.jsonl"]


def test_put_file_streams_a_local_file_and_replaces(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "index.cdxj"
    source.write_bytes(b"line\n" * 300_000)
    store.put_bytes("crawl/warc/index.cdxj", b"older")
    store.put_file("crawl/warc/index.cdxj", str(source))
    assert store.get_bytes("crawl/warc/index.cdxj") == source.read_bytes()
    assert store.list_keys("crawl/") == ["crawl/warc/index.cdxj"]


def test_list_keys_is_recursive_sorted_and_relative(store: Store) -> None:
    keys = ["report.json", "items/b/2.jsonl", "items/a/10.jsonl", "itemsx/3", "items/a/1.jsonl"]
    for key in keys:
        store.put_bytes(key, key.encode())
    assert store.list_keys("") == sorted(keys)
    assert store.list_keys("items/") == ["items/a/1.jsonl", "items/a/10.jsonl", "items/b/2.jsonl"]
    assert store.list_keys("items/a/1") == ["items/a/1.jsonl", "items/a/10.jsonl"]
    assert store.list_keys("items") == [k for k in sorted(keys) if k.startswith("items")]
    assert store.list_keys("nothing/") == []
    for key in store.list_keys(""):
        assert store.get_bytes(key) == key.encode()


def test_missing_key_returns_none(store: Store) -> None:
    assert store.get_bytes("items/missing.jsonl") is None
    store.put_bytes("items/present.jsonl", b"x")
    assert store.get_bytes("items") is None
    assert store.get_bytes("items/present.jsonl/below") is None


def test_delete_removes_and_is_idempotent(store: Store) -> None:
    store.put_bytes("items/a.jsonl", b"a")
    store.put_bytes("items/b.jsonl", b"b")
    store.delete("items/a.jsonl")
    store.delete("items/a.jsonl")
    store.delete("never/existed")
    assert store.get_bytes("items/a.jsonl") is None
    assert store.list_keys("") == ["items/b.jsonl"]


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("method", ["put_bytes", "get_bytes", "delete"])
def test_invalid_keys_rejected(store: Store, method: str, key: str) -> None:
    args = (key, b"x") if method == "put_bytes" else (key,)
    with pytest.raises(ValueError) as info:
        getattr(store, method)(*args)
    assert repr(key) in str(info.value)
    assert store.list_keys("") == []


@pytest.mark.parametrize("prefix", ["/abs", "../x", "a/../b/", "a//"])
def test_invalid_prefix_rejected(store: Store, prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid store prefix"):
        store.list_keys(prefix)


def test_check_writable_passes_and_leaves_nothing(store: Store) -> None:
    store.check_writable()
    store.check_writable()
    assert store.list_keys("") == []


# --------------------------------------------------------------------------- file backend


def _all_names(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_file_put_leaves_no_temp_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put_bytes("items/a.jsonl", b"a")
    store.put_bytes("items/a.jsonl", b"b")
    store.put_bytes("report.json", b"{}")
    assert _all_names(tmp_path) == ["items", "items/a.jsonl", "report.json"]


def test_file_partial_write_is_never_listed(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put_bytes("items/a.jsonl", b"complete\n")
    (tmp_path / "items" / f"{TMP_PREFIX}crashed").write_bytes(b'{"half": ')
    (tmp_path / f"{TMP_PREFIX}also-crashed").write_bytes(b"")
    assert store.list_keys("") == ["items/a.jsonl"]
    assert store.list_keys("items/") == ["items/a.jsonl"]


def test_file_failed_replace_keeps_old_object_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    store.put_bytes("items/a.jsonl", b"old\n")

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", broken_replace)
        with pytest.raises(StoreError) as info:
            store.put_bytes("items/a.jsonl", b"new\n")
    assert store.url in str(info.value)
    assert "'items/a.jsonl'" in str(info.value)
    assert "No space left on device" in str(info.value)
    assert store.get_bytes("items/a.jsonl") == b"old\n"
    assert _all_names(tmp_path) == ["items", "items/a.jsonl"]


def test_file_concurrent_puts_of_one_key_leave_one_whole_object(tmp_path: Path) -> None:
    store = FileStore(tmp_path, fsync=False)
    payloads = [bytes([i]) * 65536 for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda data: store.put_bytes("items/a.jsonl", data), payloads * 4))
    assert store.get_bytes("items/a.jsonl") in payloads
    assert _all_names(tmp_path) == ["items", "items/a.jsonl"]


def test_file_objects_get_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        FileStore(tmp_path).put_bytes("a.txt", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_file_delete_prunes_empty_directories(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "root")
    store.put_bytes("a/b/c.txt", b"x")
    store.put_bytes("a/keep.txt", b"y")
    store.delete("a/b/c.txt")
    assert _all_names(tmp_path / "root") == ["a", "a/keep.txt"]
    store.delete("a/keep.txt")
    assert _all_names(tmp_path) == ["root"]


def test_file_check_writable_leaves_no_probe_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "new" / "out")
    store.check_writable()
    assert _all_names(tmp_path) == ["new", "new/out"]


def test_file_check_writable_fails_when_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a directory")
    store = FileStore(tmp_path / "taken")
    with pytest.raises(StoreError) as info:
        store.check_writable()
    message = str(info.value)
    assert store.url in message
    assert "not writable" in message
    assert isinstance(info.value, ShardcrawlError)
    assert not isinstance(info.value, StoreUnavailable), "an operator must fix this: permanent"


def test_file_list_on_missing_root_is_empty(tmp_path: Path) -> None:
    assert FileStore(tmp_path / "absent").list_keys("") == []
    assert not (tmp_path / "absent").exists()


# --------------------------------------------------------------------------- S3 backend


def test_s3_objects_live_under_the_prefix(
    s3_bucket: str, moto_s3_endpoint: str, s3_client: Any
) -> None:
    store = S3Store(s3_bucket, S3_PREFIX, endpoint_url=moto_s3_endpoint)
    store.put_bytes("items/a.jsonl", b"a")
    s3_client.put_object(Bucket=s3_bucket, Key="some/prefix2/sibling", Body=b"s")
    s3_client.put_object(Bucket=s3_bucket, Key="outside", Body=b"o")
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert sorted(obj["Key"] for obj in listed) == [
        "outside",
        "some/prefix/items/a.jsonl",
        "some/prefix2/sibling",
    ]
    assert store.list_keys("") == ["items/a.jsonl"]


def test_s3_store_without_prefix_uses_bucket_root(s3_bucket: str, moto_s3_endpoint: str) -> None:
    store = open_store(f"s3://{s3_bucket}/", s3_endpoint_url=moto_s3_endpoint)
    assert store.url == f"s3://{s3_bucket}"
    store.put_bytes("report.json", b"{}")
    assert store.list_keys("") == ["report.json"]


def test_s3_list_keys_follows_pagination(s3_bucket: str, moto_s3_endpoint: str) -> None:
    store = S3Store(s3_bucket, S3_PREFIX, endpoint_url=moto_s3_endpoint)
    keys = [f"items/{i:02d}.jsonl" for i in range(7)]
    for key in keys:
        store.put_bytes(key, b"")
    calls: list[dict[str, Any]] = []

    def small_pages(params: dict[str, Any], **_: Any) -> None:
        params["MaxKeys"] = 2
        calls.append(params)

    store.client.meta.events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    assert store.list_keys("items/") == keys
    assert len(calls) == 4


def test_s3_custom_endpoint_uses_path_style(aws_test_env: dict[str, str]) -> None:
    """MinIO hosts have no bucket subdomains; presigning shows the addressing offline."""
    store = S3Store("bucket", "p", endpoint_url="http://minio.invalid:9000")
    url = store.client.generate_presigned_url("get_object", {"Bucket": "bucket", "Key": "p/k"})
    assert url.startswith("http://minio.invalid:9000/bucket/p/k?")


def test_s3_client_config_retries_and_timeouts(aws_test_env: dict[str, str]) -> None:
    config = S3Store("bucket").client.meta.config
    # botocore reads retries["max_attempts"] as retries after the first try: 4 attempts in all.
    assert config.retries == {"total_max_attempts": 4, "mode": "standard"}
    assert (config.connect_timeout, config.read_timeout) == (5, 30)


def test_s3_check_writable_missing_bucket(
    moto_s3_endpoint: str, aws_test_env: dict[str, str]
) -> None:
    store = S3Store("no-such-bucket-7c1e", "p", endpoint_url=moto_s3_endpoint)
    with pytest.raises(StoreError) as info:
        store.check_writable()
    message = str(info.value)
    assert not isinstance(info.value, StoreUnavailable)
    assert "'no-such-bucket-7c1e' does not exist" in message
    assert "s3://no-such-bucket-7c1e/p" in message
    assert aws_test_env["AWS_SECRET_ACCESS_KEY"] not in message
    assert aws_test_env["AWS_ACCESS_KEY_ID"] not in message


def test_s3_unreachable_endpoint_is_a_store_error(
    aws_test_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2)
    monkeypatch.setattr(s3_store_module, "_CLIENT_CONFIG", fast)
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3Store("bucket", endpoint_url=endpoint)
    with pytest.raises(StoreUnavailable) as info:
        store.check_writable()
    message = str(info.value)
    assert "cannot reach the S3 endpoint" in message
    assert endpoint in message
    assert aws_test_env["AWS_SECRET_ACCESS_KEY"] not in message


def test_s3_missing_credentials_is_a_store_error(
    s3_bucket: str, moto_s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = S3Store(s3_bucket, endpoint_url=moto_s3_endpoint)
    with pytest.raises(StoreError, match="no usable AWS credentials") as info:
        store.check_writable()
    assert not isinstance(info.value, StoreUnavailable)


def test_s3_get_from_missing_bucket_is_an_error_not_none(
    moto_s3_endpoint: str, aws_test_env: dict[str, str]
) -> None:
    store = S3Store("no-such-bucket-7c1e", endpoint_url=moto_s3_endpoint)
    with pytest.raises(StoreError, match="does not exist"):
        store.get_bytes("report.json")


def test_s3_client_is_created_lazily_and_once(
    s3_bucket: str, moto_s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[str] = []
    original = boto3.session.Session.client

    def counting_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        created.append(args[0] if args else kwargs["service_name"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", counting_client)
    store = S3Store(s3_bucket, endpoint_url=moto_s3_endpoint)
    assert created == []
    store.put_bytes("a", b"1")
    store.get_bytes("a")
    store.list_keys("")
    assert created == ["s3"]


def test_s3_secret_in_error_text_is_redacted(
    aws_test_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = aws_test_env["AWS_SECRET_ACCESS_KEY"]
    store = S3Store("bucket", endpoint_url="http://127.0.0.1:1")

    def leaky_put(key: str, data: bytes) -> None:
        raise s3_store_module.botocore.exceptions.BotoCoreError(msg=f"oops {secret}")

    monkeypatch.setattr(store, "_write", leaky_put)
    with pytest.raises(StoreError) as info:
        store.put_bytes("a", b"x")
    assert secret not in str(info.value)
