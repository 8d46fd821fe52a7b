"""Workers register shardcrawl's search attributes in a namespace that lacks them, and refuse to
start, naming the attribute, when one is registered with another type."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType

from shardcrawl.core.errors import ConfigError
from shardcrawl.policy.visibility import SEARCH_ATTRIBUTES, STATUS
from shardcrawl.temporal.connection import ensure_search_attributes


async def _fresh_namespace(client: Client) -> Client:
    name = f"ns-{uuid.uuid4().hex[:8]}"
    retention = Duration()
    retention.FromTimedelta(timedelta(days=1))
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=retention)
    )
    return await Client.connect(client.service_client.config.target_host, namespace=name)


async def _registered(client: Client) -> dict[str, int]:
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return dict(listed.custom_attributes)


async def test_missing_search_attributes_are_registered_once(client):
    fresh = await _fresh_namespace(client)
    assert not {k.name for k in SEARCH_ATTRIBUTES} & set(await _registered(fresh))
    await ensure_search_attributes(fresh)
    registered = await _registered(fresh)
    for key in SEARCH_ATTRIBUTES:
        assert registered[key.name] == key.indexed_value_type
    await ensure_search_attributes(fresh)  # idempotent: nothing left to add


async def test_an_attribute_of_another_type_is_refused_by_name(client):
    fresh = await _fresh_namespace(client)
    await fresh.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=fresh.namespace,
            search_attributes={STATUS.name: SearchAttributeIndexedValueType.INT},
        )
    )
    with pytest.raises(ConfigError, match=f"{STATUS.name} is registered in namespace"):
        await ensure_search_attributes(fresh)
