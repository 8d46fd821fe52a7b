"""The S3 store (AWS, MinIO, moto) through boto3; ``put_object`` is atomic by itself."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from shardcrawl.core.proxy_urls import redact
from shardcrawl.store._base import _BaseStore
from shardcrawl.store._location import Location, check_bucket, normalize_prefix

__all__ = ["S3Store"]

# A few quick retries absorb a blip; a longer outage is the shard's to wait out (it puts the
# work back and probes the store), so boto3 need not spend a minute backing off first.
_CLIENT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
)


class S3Store(_BaseStore):
    """An S3 bucket (or MinIO / moto) with an optional key prefix.

    Credentials come from the standard boto3 chain (environment, profile, instance
    role); they never appear in ``url`` or error messages.
    """

    _failures = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self.bucket = check_bucket(bucket)
        self.prefix = normalize_prefix(prefix)
        self.url = Location("s3", self.bucket, self.prefix).url
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use so constructing a store is free."""
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        config = _CLIENT_CONFIG
        if self.endpoint_url:
            # MinIO and moto have no bucket subdomains; botocore's "auto" already picks
            # path style here, pinning it keeps a profile or future default from flipping it.
            config = config.merge(Config(s3={"addressing_style": "path"}))
        session = boto3.session.Session(region_name=self.region_name)
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _describe(self) -> str:
        if self.endpoint_url:
            return f"{self.url} (endpoint {redact(self.endpoint_url, keep_placeholders=False)})"
        return self.url

    def _cause(self, exc: BaseException) -> str:
        return _redact_secrets(_s3_cause(exc, self.bucket))

    def _passes(self, exc: BaseException) -> bool:
        return _passes(exc)

    def _write(self, key: str, data: bytes) -> None:
        # A type, so that report.html opens in a browser from S3 instead of downloading.
        kind = _CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=kind)

    def _write_file(self, key: str, path: str) -> None:
        # One PUT, streamed from the file (up to S3's 5 GB for a single PUT): atomic, like
        # put_object from memory, and its failures are the same ClientErrors.
        with open(path, "rb") as handle:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=handle)

    def _read(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        return response["Body"].read()

    def _list(self, prefix: str) -> list[str]:
        root = self._key("")
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=root + prefix)
        return [item["Key"][len(root) :] for page in pages for item in page.get("Contents", [])]

    def _remove(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


_CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "txt": "text/plain; charset=utf-8",
}


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


_CREDENTIAL_ERRORS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
)
_CONNECTION_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
)


_PASSING_ERRORS = (
    botocore.exceptions.ConnectionError,  # refused, unreachable, connect timed out
    botocore.exceptions.HTTPClientError,  # connections lost, reads timed out
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.CredentialRetrievalError,  # an instance role's service, for now
)
# Answers that say "not now" rather than "no": throttling and timeouts (S3 sends 503 SlowDown).
_PASSING_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests"}
    | {"RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable"}
)


def _passes(exc: BaseException) -> bool:
    """Unreachable, timed out, 5xx or throttled: an outage that passes. Credentials, a
    missing bucket, a denied access or a malformed request need an operator."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return _error_code(exc) in _PASSING_CODES or status >= 500 or status == 429
    return isinstance(exc, _PASSING_ERRORS)


def _s3_cause(exc: BaseException, bucket: str) -> str:
    """Explain the common S3 failures in words an operator can act on."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = _error_code(exc)
        if code == "NoSuchBucket":
            return f"bucket {bucket!r} does not exist"
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return f"access to bucket {bucket!r} denied ({code}): check credentials and policy"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"the AWS credentials were rejected ({code})"
        return f"{code or 'error'}: {exc.response.get('Error', {}).get('Message', exc)}"
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return (
            "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "or configure an AWS profile"
        )
    if isinstance(exc, _CONNECTION_ERRORS):
        return f"cannot reach the S3 endpoint: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _redact_secrets(message: str) -> str:
    """Belt and braces: never let a secret from the environment reach a log line."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            message = message.replace(secret, "***")
    return message
