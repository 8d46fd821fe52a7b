"""The shard's page credits (new requests it may still send, granted by its parent), and
what it tells its parent about them."""

from __future__ import annotations

from dataclasses import dataclass

from shardcrawl.models import CrawlSpec
from shardcrawl.policy.origin_watch import OriginWatch

__all__ = ["CreditAsk", "PageCredits"]


@dataclass(frozen=True)
class CreditAsk:
    """What the shard tells its parent about credits: how many it wants (0: none), how many
    it gives back, and whether it is idle."""

    idle: bool
    wants: int
    returned: int


class PageCredits:
    """Exists so the credits a shard holds, and the asks for more, are counted in one place."""

    def __init__(self, spec: CrawlSpec, watch: OriginWatch) -> None:
        self._spec = spec
        self._watch = watch
        self.count = 0

    def add(self, credits: int) -> None:
        self.count += credits
        if credits > 0:
            self._watch.credits_arrived()

    def ask(self, *, idle: bool, queued: int) -> CreditAsk:
        """Credits an idle shard with nothing queued gives back; and, only when running low,
        a request for at least a chunk and at most what is queued, so that the request
        changes rarely and a long queue needs few grants."""
        returned = 0
        if idle and queued == 0 and self.count > 0:
            returned, self.count = self.count, 0
        low = self.count < self._spec.batch_size and queued > self.count
        least = self._spec.batch_size * max(2, self._spec.concurrency_per_host)
        wants = max(least, queued - self.count) if low else 0
        return CreditAsk(idle=idle, wants=wants, returned=returned)
