"""Store urls: ``file://PATH``, a directory path, or ``s3://BUCKET/PREFIX``, parsed and checked."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shardcrawl.core.proxy_urls import redact

__all__ = ["Location", "check_bucket", "normalize_prefix", "parse_store_url"]

_URL_HINT = "use file://PATH, a directory path or s3://BUCKET/PREFIX"
_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


@dataclass(frozen=True)
class Location:
    """A parsed store url: a local directory, or a bucket plus key prefix."""

    scheme: str
    root: str
    prefix: str = ""

    @property
    def url(self) -> str:
        if self.scheme == "file":
            return Path(self.root).as_uri()
        return f"s3://{self.root}/{self.prefix}" if self.prefix else f"s3://{self.root}"


def parse_store_url(url: str) -> Location:
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"store url is empty: {_URL_HINT}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "":
        return _local_location(url)
    if scheme == "file":
        return _local_location(_file_url_path(url))
    if scheme == "s3":
        return _s3_location(url)
    raise ValueError(f"unsupported store url {redact(url, keep_placeholders=False)!r}: {_URL_HINT}")


def _local_location(path: str) -> Location:
    return Location("file", os.path.abspath(os.path.expanduser(path)))


def _file_url_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"file url {redact(url, keep_placeholders=False)!r} names host {parts.hostname!r}: "
            "use file:///ABS/PATH or a plain directory path"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"file url {redact(url, keep_placeholders=False)!r} has a query or fragment: "
            "percent-encode '?' and '#'"
        )
    if not parts.path:
        raise ValueError(f"file url {url!r} has no path: {_URL_HINT}")
    return unquote(parts.path)


def _s3_location(url: str) -> Location:
    """Split ``s3://bucket/prefix`` literally: S3 keys may contain '?' and '#'."""
    if url[:5].lower() != "s3://":
        raise ValueError(f"malformed s3 url {redact(url, keep_placeholders=False)!r}: {_URL_HINT}")
    bucket, _, prefix = url[5:].partition("/")
    return Location("s3", check_bucket(bucket), normalize_prefix(prefix))


def check_bucket(bucket: str) -> str:
    if "@" in bucket:
        raise ValueError(
            "s3 store url must not contain credentials: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or an AWS profile) instead"
        )
    if not _BUCKET_RE.fullmatch(bucket):
        raise ValueError(f"invalid s3 bucket name {bucket!r}: {_URL_HINT}")
    return bucket


def normalize_prefix(prefix: str) -> str:
    """Collapse empty segments and strip slashes; reject '.' and '..'."""
    segments = [segment for segment in prefix.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise ValueError(f"invalid s3 key prefix {prefix!r}: '.' and '..' segments are not allowed")
    return "/".join(segments)
