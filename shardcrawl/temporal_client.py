"""Connecting to Temporal with the pydantic data converter, as client and worker must agree."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from shardcrawl.config import Config
from shardcrawl.errors import TemporalUnavailableError

__all__ = ["connect"]


async def connect(config: Config) -> Client:
    """A client for the configured address and namespace, or a clear error if none answers."""
    try:
        return await Client.connect(
            config.temporal_address,
            namespace=config.temporal_namespace,
            data_converter=pydantic_data_converter,
        )
    except (RPCError, RuntimeError, OSError) as exc:
        raise TemporalUnavailableError(
            f"no Temporal server answers at {config.temporal_address} "
            f"(namespace {config.temporal_namespace!r}): {exc}. Start one with "
            "`shardcrawl server`, or set TEMPORAL_ADDRESS."
        ) from None
