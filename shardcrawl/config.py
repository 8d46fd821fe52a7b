"""Process configuration from the environment, for workers and the CLI.

pydantic-settings with ``extra="forbid"``, and ``Config.load`` also refuses an unknown
``SHARDCRAWL_*`` variable (pydantic-settings ignores those), so a misspelt setting is an error,
not a silent default. The Temporal variables keep the names the Temporal CLI uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shardcrawl.errors import ConfigError

__all__ = ["DEFAULT_TASK_QUEUE", "Config"]

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
        default="spiders",
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

    def spider_module_list(self) -> list[str]:
        return [name.strip() for name in self.spider_modules.split(",")]

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read the environment, refusing unknown ``SHARDCRAWL_*`` names."""
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
        return cls()
