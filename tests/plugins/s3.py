"""Pytest plugin: a real moto S3 server on loopback, and throwaway buckets in it.

A separate HTTP server (rather than in-process mocking) exercises the same boto3
code path, endpoint handling and error translation that talk to MinIO or AWS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from shardcrawl.core.ports import free_port

__all__ = [
    "aws_test_env",
    "make_bucket",
    "moto_s3_endpoint",
    "s3_bucket",
    "start_moto",
    "stop_moto",
]

_STARTUP_TIMEOUT_S = 20.0
_LOOPBACK_HOSTS = "127.0.0.1,localhost"
_ISOLATED_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


def _answers_http(url: str) -> bool:
    """True once anything speaks HTTP at ``url``; proxies are bypassed explicitly."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _wait_until_answering(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"moto server (pid {proc.pid}) exited with code {proc.returncode} before "
                f"answering at {url}; its output:\n{log_path.read_text(errors='replace')}",
                pytrace=False,
            )
        if _answers_http(url):
            return
        time.sleep(0.1)
    pytest.fail(
        f"moto server (pid {proc.pid}) did not answer at {url} within "
        f"{_STARTUP_TIMEOUT_S:.0f} s; its output:\n{log_path.read_text(errors='replace')}",
        pytrace=False,
    )


def stop_moto(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_moto(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m moto.server`` on a free loopback port, once it answers; its URL.

    Output goes to a log file, not a pipe: moto logs every request and an unread
    pipe would eventually block the server.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_answering(url, proc, log_path)
    except BaseException:
        stop_moto(proc)
        raise
    return proc, url


@pytest.fixture(scope="session")
def moto_s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto S3 server for the whole session."""
    proc, url = start_moto(tmp_path_factory.mktemp("moto") / "moto-server.log")
    try:
        yield url
    finally:
        stop_moto(proc)


def _append_env(monkeypatch: pytest.MonkeyPatch, name: str, hosts: str) -> None:
    current = os.environ.get(name)
    monkeypatch.setenv(name, f"{current},{hosts}" if current else hosts)


@pytest.fixture
def aws_test_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake credentials and an AWS environment that cannot reach past loopback.

    Profiles, config files, role and container credentials and the EC2 metadata
    service are all switched off, so boto3 neither picks up a developer's real
    setup nor tries the network to find credentials. Returns the fake credentials.
    """
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing-access-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-access-key-9f2c",
    }
    for name in _ISOLATED_AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # urllib (and so botocore) prefers lower-case proxy variables: set both.
    _append_env(monkeypatch, "NO_PROXY", _LOOPBACK_HOSTS)
    _append_env(monkeypatch, "no_proxy", _LOOPBACK_HOSTS)
    return credentials


@pytest.fixture
def s3_bucket(moto_s3_endpoint: str, aws_test_env: dict[str, str]) -> str:
    """Create a uniquely named, empty bucket in the moto server and return its name."""
    return make_bucket(moto_s3_endpoint)


def make_bucket(endpoint: str) -> str:
    """A new, empty, uniquely named bucket at the S3 server ``endpoint``."""
    name = f"shardcrawl-test-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name
