"""Process configuration from the environment, for workers and the CLI.

pydantic-settings with ``extra="forbid"``, and ``Config.load`` also refuses an unknown
``SHARDCRAWL_*`` variable (pydantic-settings ignores those), so a misspelt setting is an error,
not a silent default. The Temporal variables keep the names the Temporal CLI uses.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shardcrawl.core.errors import ConfigError
from shardcrawl.core.fleet_names import DEFAULT_FLEET, check_fleet_name

# Workflow tasks and Scrapy's parsing in one process share one GIL; a worker of each role
# keeps them apart (what it buys: docs/benchmarks.md, "Worker roles").
WorkerRole = Literal["all", "workflows", "activities"]

__all__ = ["DEFAULT_TASK_QUEUE", "Config", "add_worker_arguments", "worker_overrides"]

DEFAULT_TASK_QUEUE = "shardcrawl"


class Config(BaseSettings):
    """Where Temporal and the store are, and how much a worker takes on."""

    model_config = SettingsConfigDict(env_prefix="SHARDCRAWL_", extra="forbid")

    temporal_address: str = Field(
        default="localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "SHARDCRAWL_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "SHARDCRAWL_TEMPORAL_NAMESPACE"),
    )
    task_queue: str = Field(default=DEFAULT_TASK_QUEUE, min_length=1)
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SHARDCRAWL_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"),
        description="S3-compatible endpoint (MinIO, moto); empty means AWS",
    )
    max_concurrent_batches: int = Field(default=32, ge=1, le=256)
    connect_wait_seconds: float = Field(
        default=120.0, ge=0.0, description="how long a starting worker waits for Temporal"
    )
    spider_modules: str = Field(
        default="shardcrawl.spiders",
        pattern=r"^\s*[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*\s*$",
        description="comma-separated modules whose Scrapy spiders a worker runs (a user's own "
        "Scrapy project package works as it is)",
    )
    log_level: str = Field(default="INFO")
    metrics_address: str | None = Field(
        default=None,
        pattern=r"^[^:\s]+:\d{1,5}$",
        description="HOST:PORT where a worker serves Prometheus metrics; unset means none",
    )
    fetch_queues: str = Field(
        default="",
        description="comma-separated fleets whose fetch activities a worker runs ('default': "
        "the main queue, workflows included); empty means the main queue alone",
    )
    bind_address: str | None = Field(
        default=None, description="the local IP address a worker's requests go out from"
    )
    worker_role: WorkerRole = Field(
        default="all",
        description="what a worker on the main queue runs: 'workflows', 'activities' or 'all'",
    )

    @field_validator("fetch_queues")
    @classmethod
    def _fleets(cls, value: str) -> str:
        for name in value.split(","):
            if name.strip():
                check_fleet_name(name.strip())
        return value

    @field_validator("bind_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address") from None
        return value or None

    def spider_module_list(self) -> list[str]:
        return [name.strip() for name in self.spider_modules.split(",")]

    @model_validator(mode="after")
    def _role_and_fleets(self) -> Config:
        if self.worker_role == "workflows" and self.fleets() != [DEFAULT_FLEET]:
            raise ValueError(
                f"worker_role 'workflows' runs no fetch activities, so it serves no fetch "
                f"queue: fetch_queues {self.fetch_queues!r}"
            )
        return self

    def fleets(self) -> list[str]:
        """The fleets this worker serves, each once, in order; the default fleet alone when
        none is named."""
        names = [n.strip() for n in self.fetch_queues.split(",") if n.strip()]
        return list(dict.fromkeys(names)) or [DEFAULT_FLEET]

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read the environment, refusing unknown ``SHARDCRAWL_*`` names; ``overrides``
        (command-line flags) win over it."""
        env = os.environ if environ is None else environ
        known = {"SHARDCRAWL_" + name.upper() for name in cls.model_fields}
        for field in cls.model_fields.values():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                known.update(str(choice) for choice in alias.choices)
        unknown = sorted(k for k in env if k.startswith("SHARDCRAWL_") and k not in known)
        if unknown:
            name = unknown[0]
            raise ConfigError(
                f"unknown setting {name}={env[name]!r}; known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**overrides)
        except ValidationError as exc:
            problem = exc.errors()[0]
            name = "SHARDCRAWL_" + str(problem["loc"][0]).upper() if problem["loc"] else "setting"
            message = problem["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{name}: {message}") from None


def _fleet_arg(value: str) -> str:
    try:
        return check_fleet_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ip_arg(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from None


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """``shardcrawl worker`` and ``python worker.py`` take the same flags."""
    parser.add_argument(
        "--fetch-queue",
        action="append",
        type=_fleet_arg,
        metavar="FLEET",
        help="serve this fleet's fetch activities (repeatable; 'default' is the main queue, "
        "workflows included, and the only one when none is given)",
    )
    parser.add_argument(
        "--role",
        choices=("all", "workflows", "activities"),
        help="run only the workflows, or only the activities, of the main queue (default: all)",
    )
    parser.add_argument(
        "--bind-address",
        type=_ip_arg,
        metavar="IP",
        help="the local address requests go out from (Scrapy's DOWNLOAD_BIND_ADDRESS)",
    )


def worker_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, as Config fields (over $SHARDCRAWL_FETCH_QUEUES,
    $SHARDCRAWL_BIND_ADDRESS and $SHARDCRAWL_WORKER_ROLE)."""
    overrides: dict[str, Any] = {}
    if args.fetch_queue:
        overrides["fetch_queues"] = ",".join(args.fetch_queue)
    if args.bind_address:
        overrides["bind_address"] = args.bind_address
    if args.role:
        overrides["worker_role"] = args.role
    return overrides
