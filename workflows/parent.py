"""The crawl a child workflow (a shard, the proxy broker) belongs to."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

__all__ = ["crawl_parent"]


def crawl_parent(child: str) -> workflow.ExternalWorkflowHandle[Any]:
    """The parent crawl's handle, by workflow id alone: the parent may have continued as new
    since it started the child. A child started on its own fails at once, not retried."""
    parent = workflow.info().parent
    if parent is None:
        raise ApplicationError(
            f"{child} runs only as a child of CrawlWorkflow", type="NotAChild", non_retryable=True
        )
    return workflow.get_external_workflow_handle(parent.workflow_id)
