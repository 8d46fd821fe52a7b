"""The cluster's docker-compose.yml agrees with the code it runs and with the Dockerfile.

No Docker here: the file is parsed and cross-checked against shardcrawl's settings, its
command line and the Dockerfile, so a renamed setting, service, port, bucket or credential
fails this test instead of a cluster at start-up.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from shardcrawl.cli.main import build_parser
from shardcrawl.temporal import worker as worker_module
from shardcrawl.temporal.config import DEFAULT_TASK_QUEUE, Config
from tests.helpers import DOCKERFILE, ROOT

__all__: list[str] = []

COMPOSE_FILE = ROOT / "docker-compose.yml"
REQUIRED_SERVICES = {"postgresql", "temporal", "temporal-ui", "minio", "minio-setup", "worker"}
TEMPORAL_FRONTEND_PORT = 7233
MINIO_DEFAULT_ADDRESS = ":9000"


# --------------------------------------------------------------------------- parsing helpers

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def _interpolate(value: str) -> str:
    """Compose's ``$$`` and ``${NAME:-default}`` as they come out with NAME unset."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("op"):
            return match.group("default")
        name = match.group("name") or match.group("bare")
        raise AssertionError(f"{value!r} needs host variable {name}; give it a default")

    return _VARIABLE.sub(replace, value)


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as compose passes it, list or mapping form."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = [entry.split("=", 1) if "=" in entry else (entry, None) for entry in raw]
    else:
        pairs = list(raw.items())
    env = {}
    for key, value in pairs:
        assert value is not None, f"{key} is passed through from the host; set a value"
        text = str(value).lower() if isinstance(value, bool) else str(value)
        env[key] = _interpolate(text)
    return env


def _argv(value: str | list[Any] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(_interpolate(value))
    return [_interpolate(str(part)) for part in value]


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Ports the service declares inside the network (``ports`` targets and ``expose``)."""
    exposed = {int(str(entry).split("/")[0]) for entry in service.get("expose", [])}
    return exposed | {container for _, container in _port_mappings(service)}


def _published_ports(service: dict[str, Any]) -> set[int]:
    return {int(host) for host, _ in _port_mappings(service) if host}


def _port_mappings(service: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(host port or None, container port) for short (``[ip:]host:container``) and long syntax."""
    mappings: list[tuple[str | None, int]] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            mappings.append((str(published) if published else None, int(entry["target"])))
            continue
        parts = _interpolate(str(entry)).split("/")[0].rsplit(":", 2)
        mappings.append((parts[-2] if len(parts) > 1 else None, int(parts[-1])))
    return mappings


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    assert sep and host and port.isdigit(), f"{address!r} is not HOST:PORT"
    return host, int(port)


def _option(argv: list[str], flag: str, default: str) -> str:
    """The value after ``flag`` (or in ``flag=value``), else ``default``."""
    for index, word in enumerate(argv):
        if word == flag and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(flag + "="):
            return word.partition("=")[2]
    return default


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency name -> condition (the short list form means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def _seconds(duration: str) -> float:
    """A compose duration such as ``30s`` or ``1m30s``."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def header() -> str:
    """The comment block at the top of docker-compose.yml, without the '#' marks."""
    lines = []
    for line in COMPOSE_FILE.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return "\n".join(lines)


@pytest.fixture
def worker_config(services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Config:
    """What ``Config.load`` makes of the worker's environment, with nothing from ours."""
    for name in list(os.environ):
        if name.startswith(("SHARDCRAWL_", "TEMPORAL_")) or name == "AWS_ENDPOINT_URL_S3":
            monkeypatch.delenv(name)
    env = _env(services["worker"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Config.load(environ=env)


# --------------------------------------------------------------------------- services


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= REQUIRED_SERVICES, sorted(REQUIRED_SERVICES - set(services))


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "image" not in service:
            continue
        image = service["image"]
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        assert tag and tag != "latest", f"{name}: pin {image!r} to a version tag"


def test_worker_builds_from_this_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    build = services["worker"]["build"]
    if isinstance(build, str):
        build = {"context": build}
    context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    assert (COMPOSE_FILE.parent / context / dockerfile).resolve() == DOCKERFILE


# --------------------------------------------------------------------------- worker settings


def test_worker_shardcrawl_variables_are_known_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    known = {"SHARDCRAWL_" + name.upper() for name in Config.model_fields}
    for field in Config.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            known.update(str(choice) for choice in field.validation_alias.choices)
    env = _env(services["worker"])
    unknown = sorted(name for name in env if name.startswith("SHARDCRAWL_") and name not in known)
    assert not unknown, f"not settings of shardcrawl.temporal.config.Config: {unknown}"


def test_worker_environment_loads(
    worker_config: Config, services: dict[str, dict[str, Any]]
) -> None:
    env = _env(services["worker"])
    assert worker_config.temporal_address == env["TEMPORAL_ADDRESS"]
    assert worker_config.s3_endpoint_url, "the worker needs an S3 endpoint for MinIO"
    if "SHARDCRAWL_TASK_QUEUE" in env:
        assert worker_config.task_queue == env["SHARDCRAWL_TASK_QUEUE"]


def test_worker_serves_the_queue_and_namespace_clients_use_by_default(
    worker_config: Config, services: dict[str, dict[str, Any]]
) -> None:
    # The header's `shardcrawl start` sets neither, so it uses Config's defaults.
    assert worker_config.task_queue == DEFAULT_TASK_QUEUE
    assert worker_config.temporal_namespace == Config.model_fields["temporal_namespace"].default
    # auto-setup registers DEFAULT_NAMESPACE (default "default"); the worker must poll that one.
    temporal_env = _env(services["temporal"])
    assert worker_config.temporal_namespace == temporal_env.get("DEFAULT_NAMESPACE", "default")
    assert temporal_env.get("SKIP_DEFAULT_NAMESPACE_CREATION", "false") != "true"


def test_worker_reaches_the_temporal_service(
    worker_config: Config, services: dict[str, dict[str, Any]]
) -> None:
    host, port = _host_port(worker_config.temporal_address)
    assert host == "temporal" and "temporal" in services
    assert port == TEMPORAL_FRONTEND_PORT
    assert port in _container_ports(services["temporal"])


def test_worker_reaches_the_minio_service(
    worker_config: Config, services: dict[str, dict[str, Any]]
) -> None:
    endpoint = urlsplit(worker_config.s3_endpoint_url or "")
    minio = services["minio"]
    command = _argv(minio.get("command"))
    address = _option(command, "--address", MINIO_DEFAULT_ADDRESS)
    assert endpoint.scheme == "http" and endpoint.hostname == "minio"
    assert endpoint.port == int(address.rpartition(":")[2]) == 9000
    assert endpoint.port in _container_ports(minio)
    console = _option(command, "--console-address", "")
    assert console and int(console.rpartition(":")[2]) in _container_ports(minio)


def test_worker_credentials_are_minio_root(services: dict[str, dict[str, Any]]) -> None:
    worker_env, minio_env = _env(services["worker"]), _env(services["minio"])
    assert worker_env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"]
    assert worker_env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]
    assert worker_env.get("AWS_DEFAULT_REGION"), "boto3 needs a region"


def test_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed name allows one worker only"
    assert not worker.get("ports"), "a published port allows one worker per host port"
    assert worker.get("restart") == "unless-stopped"


def test_worker_waits_for_temporal_and_the_bucket(services: dict[str, dict[str, Any]]) -> None:
    depends = _depends_on(services["worker"])
    assert "temporal" in depends
    assert depends.get("minio-setup") == "service_completed_successfully"


def test_worker_gets_time_to_shut_down_gracefully(services: dict[str, dict[str, Any]]) -> None:
    grace = _seconds(str(services["worker"].get("stop_grace_period", "10s")))
    assert grace > worker_module.GRACEFUL_SHUTDOWN_SECONDS


def test_worker_metrics_listen_on_its_exposed_port(
    services: dict[str, dict[str, Any]], worker_config: Config
) -> None:
    assert worker_config.metrics_address, "workers in the cluster serve Prometheus metrics"
    host, port = _host_port(worker_config.metrics_address)
    assert host == "0.0.0.0", "metrics on loopback are unreachable from other containers"
    assert port in _container_ports(services["worker"])


# --------------------------------------------------------------------------- other services


def test_temporal_uses_the_postgresql_service(services: dict[str, dict[str, Any]]) -> None:
    temporal, postgres = _env(services["temporal"]), _env(services["postgresql"])
    assert temporal["DB"] == "postgres12"
    assert temporal["POSTGRES_SEEDS"] == "postgresql"
    assert temporal["DB_PORT"] == "5432"
    assert temporal["POSTGRES_USER"] == postgres["POSTGRES_USER"]
    assert temporal["POSTGRES_PWD"] == postgres["POSTGRES_PASSWORD"]
    assert _depends_on(services["temporal"]).get("postgresql") == "service_healthy"
    assert "pg_isready" in _argv(services["postgresql"]["healthcheck"]["test"])


def test_temporal_ui_points_at_temporal(services: dict[str, dict[str, Any]]) -> None:
    host, port = _host_port(_env(services["temporal-ui"])["TEMPORAL_ADDRESS"])
    assert host == "temporal"
    assert port in _container_ports(services["temporal"])


def test_minio_setup_creates_the_header_bucket_on_minio(
    services: dict[str, dict[str, Any]], header: str
) -> None:
    setup = services["minio-setup"]
    command = _argv(setup.get("command"))
    assert command[0] == "mb" and "entrypoint" not in setup, command
    targets = [word for word in command[1:] if not word.startswith("-")]
    assert len(targets) == 1, command
    alias, _, bucket = targets[0].partition("/")

    host = urlsplit(_env(setup)[f"MC_HOST_{alias}"])
    minio_env = _env(services["minio"])
    assert (host.hostname, host.port) == ("minio", 9000)
    assert host.username == minio_env["MINIO_ROOT_USER"]
    assert host.password == minio_env["MINIO_ROOT_PASSWORD"]
    assert _depends_on(setup).get("minio") == "service_healthy"

    out = re.search(r"--out s3://([^/\s]+)", header)
    assert out, "the header shows no `--out s3://BUCKET/...`"
    assert out.group(1) == bucket


# --------------------------------------------------------------------------- header example


def test_header_commands_are_valid(header: str, services: dict[str, dict[str, Any]]) -> None:
    assert re.search(r"docker compose up -d --scale worker=\d+", header)
    start = re.search(r"TEMPORAL_ADDRESS=(\S+) shardcrawl (start .*)", header)
    wait = re.search(r"shardcrawl (wait \S+)", header)
    assert start and wait, "the header shows `shardcrawl start` and `shardcrawl wait`"

    parser = build_parser()
    assert parser.parse_args(shlex.split(start.group(2))).command == "start"
    assert parser.parse_args(shlex.split(wait.group(1))).command == "wait"
    host, port = _host_port(start.group(1))
    assert host == "localhost" and port in _published_ports(services["temporal"])


def test_header_aws_environment_is_minio(header: str, services: dict[str, dict[str, Any]]) -> None:
    shown = dict(re.findall(r"\b(AWS_[A-Z_0-9]+)=(\S+)", header))
    minio_env = _env(services["minio"])
    assert shown.get("AWS_ACCESS_KEY_ID") == minio_env["MINIO_ROOT_USER"]
    assert shown.get("AWS_SECRET_ACCESS_KEY") == minio_env["MINIO_ROOT_PASSWORD"]
    endpoint = urlsplit(shown.get("AWS_ENDPOINT_URL_S3", ""))
    assert endpoint.hostname == "localhost"
    assert endpoint.port in _published_ports(services["minio"])
