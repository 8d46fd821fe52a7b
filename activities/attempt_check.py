"""Is this activity attempt still the one Temporal waits for? Asked right before a batch
writes its output, so a worker that was cut off (its heartbeats lost, its batch given to
another worker) never writes over the output of the attempt the shard accepted."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

__all__ = ["SUPERSEDED", "ensure_current_attempt"]

SUPERSEDED = "AttemptSuperseded"
_RPC_TIMEOUT = timedelta(seconds=5)


async def ensure_current_attempt() -> None:
    """Raises unless the server still lists this activity as started at this attempt. A
    server that cannot be reached is no proof either way: the attempt fails, unwritten (if it
    is still current, Temporal runs it again)."""
    info = activity.info()
    activity.heartbeat()
    handle = activity.client().get_workflow_handle(
        info.workflow_id or "", run_id=info.workflow_run_id
    )
    try:
        description = await handle.describe(rpc_timeout=_RPC_TIMEOUT)
    except Exception as exc:
        raise ApplicationError(
            f"cannot confirm attempt {info.attempt} of {info.activity_id} before writing: {exc}",
            type=SUPERSEDED,
        ) from exc
    for pending in description.raw_description.pending_activities:
        if pending.activity_id == info.activity_id and pending.attempt == info.attempt:
            return
    raise ApplicationError(
        f"attempt {info.attempt} of {info.activity_id} was superseded: not writing",
        type=SUPERSEDED,
    )
