"""The shard engine's large state across continue-as-new: saved to the store, loaded back."""

from __future__ import annotations

from typing import Any

from shardcrawl.core import layout
from shardcrawl.models import SegmentDelete, ShardCheckpoint, ShardInput
from shardcrawl.policy.segments import pack_fingerprints, pack_records, unpack_records
from shardcrawl.policy.shard_engine import STATE_KINDS, ShardEngine
from shardcrawl.workflows.shard_activities import ShardActivities

__all__ = ["load_engine_state", "save_engine_state"]

# Checkpoint fields holding each kind of the engine's state.
STATE_FIELDS = {
    "frontier": "frontier_segments",
    "hosts": "hosts_segments",
    "retries": "retry_segments",
    "pressure": "pressure_segments",
    "robots": "robots_segments",
    "sitemaps": "sitemap_segments",
}


async def save_engine_state(
    engine: ShardEngine, activities: ShardActivities, generation: int
) -> dict[str, Any]:
    """The state as segments in the store (a claim-check: history holds only their keys), and
    the keys, by the checkpoint field that holds them (the seen-set first)."""
    seen = await activities.save_segments(
        "state", "seen", pack_fingerprints(engine.frontier.seen_bytes()), generation
    )
    segments: dict[str, Any] = {"seen_segments": seen}
    for kind in STATE_KINDS:
        segments[STATE_FIELDS[kind]] = await activities.save_segments(
            "state", kind, pack_records(engine.export(kind)), generation
        )
    return segments


async def load_engine_state(
    engine: ShardEngine,
    activities: ShardActivities,
    shard: ShardInput,
    checkpoint: ShardCheckpoint,
) -> None:
    """The large state, from the store; signals meanwhile only fill the inbox."""
    seen = [await activities.load_segment(key) for key in checkpoint.seen_segments]
    engine.frontier.restore_seen(b"".join(seen))
    del seen
    for kind in STATE_KINDS:
        for key in getattr(checkpoint, STATE_FIELDS[kind]):
            engine.restore(kind, unpack_records(await activities.load_segment(key)))
    engine.look_at_everything()
    # Loaded into history now, so the store's copy is no longer needed.
    delete = SegmentDelete(
        output=shard.spec.output,
        prefix=layout.shard_state_prefix(shard.crawl_id, shard.shard, checkpoint.generation),
    )
    await activities.store("delete_segments", delete)
