"""How a proxy's capacity is split among a crawl's shards: a fixed partition.

Every shard owns a fixed share of every proxy's concurrent requests, so the shards' leases add
up to at most the proxy's capacity whatever the fleet does, with no message between shards
and nothing to reclaim when a shard or worker dies. The price is that a share a shard does not
use stays idle (see docs/architecture.md, "Proxies"). Shares differ by at most one; the odd
slots of a pool's proxies are dealt round the shards in order, continuing from one proxy to the
next, so a pool whose total capacity is at least the shard count gives every shard a slot.
"""

from __future__ import annotations

__all__ = ["deal_shares"]


def deal_shares(capacities: list[int], shard_count: int) -> list[list[int]]:
    """``shares[shard][i]``: the slots of a pool's proxy ``i`` that ``shard`` owns."""
    shares = [[capacity // shard_count for capacity in capacities] for _ in range(shard_count)]
    dealt = 0
    for i, capacity in enumerate(capacities):
        for _ in range(capacity % shard_count):
            shares[dealt % shard_count][i] += 1
            dealt += 1
    return shares
