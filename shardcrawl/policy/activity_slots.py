"""The shard's activities in flight: how many, how many are retry batches, and per fleet."""

from __future__ import annotations

from shardcrawl.policy.fetch_queues import FetchQueues
from shardcrawl.policy.origin_watch import OriginWatch

__all__ = ["MAX_BATCHES_IN_FLIGHT", "MAX_RETRY_BATCHES", "ActivitySlots"]

MAX_BATCHES_IN_FLIGHT = 64
# Retry batches of all hosts together hold at most this share of the shard's batch slots, so
# failing hosts cannot crowd out new work on healthy ones (each host's own retry budget is
# the spec's retry.budget_share of its concurrency).
MAX_RETRY_BATCHES = max(1, MAX_BATCHES_IN_FLIGHT // 5)


class ActivitySlots:
    """Exists so the shard's batch slots are counted in one place and shared out by fleet."""

    def __init__(self, fleets: FetchQueues, watch: OriginWatch) -> None:
        self._fleets = fleets
        self._watch = watch
        # Activities planned and not yet landed or cut off (batches, robots.txt, sitemaps).
        self.in_flight = 0
        self.retry_batches = 0
        # Each fleet a route names holds at most its share of the shard's batch slots, the
        # main queue's fleet keeping one share: a fleet with no worker cannot stall the rest.
        self._fleet_cap = MAX_BATCHES_IN_FLIGHT // (1 + len(fleets.named))
        # Per named fleet: its activities in flight, and the origins waiting for a slot.
        self._fleet_load = dict.fromkeys(fleets.named, 0)
        self._fleet_waiters: dict[str, dict[str, None]] = {}

    def fleet_full(self, fleet: str, opened: int = 0) -> bool:
        """Whether the fleet has no slot left, with ``opened`` activities being planned."""
        return self._fleet_load[fleet] + opened >= self._fleet_cap

    def wait_for_fleet(self, fleet: str, origin: str) -> None:
        """The origin waits for a slot of the fleet: the fleet's next landing touches it."""
        self._fleet_waiters.setdefault(fleet, {})[origin] = None

    def started(self, fleet: str | None) -> None:
        """An activity planned, on the fleet's queue."""
        self.in_flight += 1
        if fleet is not None:
            self._fleet_load[fleet] += 1

    def landed(self, url: str) -> None:
        """An activity whose first URL is ``url`` landed (or was cut off): its fleet's
        waiting origins are looked at again."""
        self.in_flight -= 1
        fleet = self._fleets.of_url(url)
        if fleet is not None:
            self._fleet_load[fleet] -= 1
            self._watch.touch_all(self._fleet_waiters.pop(fleet, {}))

    def fleet_load(self) -> dict[str, int]:
        """Activities in flight on each fleet the routes name, for live status."""
        return dict(self._fleet_load)
