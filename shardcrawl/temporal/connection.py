"""Connecting to Temporal with shardcrawl's data converter (shardcrawl.temporal.wire), as
client and worker must agree."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Coroutine
from typing import Any, NoReturn

from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError

from shardcrawl.core.errors import ConfigError, TemporalUnavailableError
from shardcrawl.policy.visibility import SEARCH_ATTRIBUTES
from shardcrawl.temporal.config import Config
from shardcrawl.temporal.wire import data_converter

__all__ = ["connect", "ensure_search_attributes", "exit_now", "metrics_runtime", "run"]

log = logging.getLogger(__name__)


def exit_now(code: int) -> NoReturn:
    """Exit without interpreter teardown: the Temporal client's core threads can crash a
    finalizing interpreter (temporalio/sdk-python#300), turning a clean exit into SIGABRT."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(main: Coroutine[Any, Any, object]) -> NoReturn:
    """``asyncio.run(main)`` for a script that uses a Temporal client, then ``exit_now``:
    0, the code of a ``SystemExit``, 130 on Ctrl-C, or 1 with the traceback printed."""
    try:
        asyncio.run(main)
    except SystemExit as exc:
        exit_now(exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1)
    except KeyboardInterrupt:
        exit_now(130)
    except BaseException:
        traceback.print_exc()
        exit_now(1)
    exit_now(0)


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime serving Prometheus metrics on ``address``: the SDK's own and the
    ones shardcrawl's workflows and activities record through their metric meters."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def connect(
    config: Config, *, wait_seconds: float = 0.0, runtime: Runtime | None = None
) -> Client:
    """A client for the configured address and namespace, or a clear error if none answers.

    With ``wait_seconds``, a server that is not up yet (restarting, or started alongside the
    workers) is retried with backoff for that long; the CLI fails at once instead.
    """
    deadline = time.monotonic() + wait_seconds
    delay = 0.25
    while True:
        try:
            return await Client.connect(
                config.temporal_address,
                namespace=config.temporal_namespace,
                data_converter=data_converter,
                runtime=runtime,
            )
        except (RPCError, RuntimeError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                raise TemporalUnavailableError(
                    f"no Temporal server answers at {config.temporal_address} "
                    f"({_address_source()}; namespace {config.temporal_namespace!r}): {exc}. "
                    + _address_hint()
                ) from None
            log.warning("Temporal at %s not answering, retrying: %s", config.temporal_address, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _address_source() -> str:
    """Where the address came from, so the message says what was tried and why."""
    for name in ("TEMPORAL_ADDRESS", "SHARDCRAWL_TEMPORAL_ADDRESS"):
        if name in os.environ:
            return f"from ${name}"
    return "the default; $TEMPORAL_ADDRESS is not set"


def _address_hint() -> str:
    if "TEMPORAL_ADDRESS" in os.environ or "SHARDCRAWL_TEMPORAL_ADDRESS" in os.environ:
        return "Check that the server runs and that the variable names it."
    return "Start one with `shardcrawl server`, or set TEMPORAL_ADDRESS to a running one."


async def ensure_search_attributes(client: Client) -> None:
    """Register shardcrawl's search attributes in the client's namespace if they are missing,
    so that no crawl sets an unknown one (which would fail its workflow tasks for ever). A
    server that does not let this client add them gets a ConfigError naming the command."""
    namespace = client.namespace
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing: dict[str, Any] = {}
    for key in SEARCH_ATTRIBUTES:
        registered = listed.custom_attributes.get(key.name)
        if registered is None:
            missing[key.name] = key.indexed_value_type
        elif registered != key.indexed_value_type:
            raise ConfigError(
                f"search attribute {key.name} is registered in namespace {namespace!r} with "
                f"another type ({SearchAttributeIndexedValueType(registered).name}, not "
                f"{key.indexed_value_type.name}); remove it or use another namespace"
            )
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as exc:
        raise ConfigError(
            f"search attributes {', '.join(missing)} are not registered in namespace "
            f"{namespace!r} and this worker may not add them ({exc.message}); register them "
            "once with `temporal operator search-attribute create` (see README, Many machines)"
        ) from exc
    log.info("registered search attributes %s in namespace %s", ", ".join(missing), namespace)
