"""Per-host politeness as a budget batches are allotted slots of, so the fleet never exceeds it.

A host's budget is ``max_concurrency`` request slots and a ``delay_seconds`` between requests.
The batch in flight for the host has an allotment of some slots and runs Scrapy with exactly that
concurrency and a delay scaled by its share, so the host never sees more, whichever worker
runs it. After a batch ends, the host rests one delay before its next allotment.

A host has one batch in flight at a time, holding its whole budget (a retry batch holds the
retry budget's share). Whatever the host says (a Retry-After, a block, a 429) then reaches every
request in flight for it at once, as the batch that hears it stops: no second batch keeps going
on another worker. Many small batches per host also cost CPU: at 1M pages, up to 8 one-slot
batches per host made Scrapy's per-crawler overhead the bottleneck (165 pages/s, against 460).
"""

from __future__ import annotations

from dataclasses import dataclass

from shardcrawl.policy.host_table import HostTable

__all__ = ["Allotment", "Politeness"]


@dataclass(frozen=True)
class Allotment:
    host: str
    slots: int
    delay_seconds: float
    rest_seconds: float = 0.0
    retry: bool = False


class Politeness:
    """Allots per-host request slots to batches. Times are seconds on the workflow clock.
    The budgets live in the shard's ``HostTable`` (a table of its own unless given one)."""

    def __init__(
        self, *, max_concurrency: int, delay_seconds: float, hosts: HostTable | None = None
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if delay_seconds < 0:
            raise ValueError(f"delay_seconds must be >= 0, got {delay_seconds}")
        self.max_concurrency = max_concurrency
        self.delay_seconds = delay_seconds
        self._hosts = HostTable() if hosts is None else hosts

    def allot(
        self,
        host: str,
        *,
        queued: int,
        now: float,
        max_concurrency: int | None = None,
        delay_seconds: float | None = None,
        retry_slots: int | None = None,
    ) -> Allotment | None:
        """The host's free slots for its one batch, or None while it has a batch in flight,
        rests, or has no work.

        ``max_concurrency`` and ``delay_seconds`` override the crawl's for this host (adaptive
        pressure). An allotment with ``retry_slots`` is for retries and holds at most that many
        slots (the retry budget); its delay scales up so the host sees no faster a rate.
        """
        limit = max_concurrency or self.max_concurrency
        delay = self.delay_seconds if delay_seconds is None else delay_seconds
        slots = self.slots_free(
            host, queued=queued, now=now, max_concurrency=limit, retry_slots=retry_slots
        )
        if not slots:
            return None
        budget = self._hosts[host].budget
        budget.in_use += slots
        budget.batches += 1
        return Allotment(
            host=host,
            slots=slots,
            delay_seconds=delay * limit / slots,
            rest_seconds=delay,
            retry=retry_slots is not None,
        )

    def slots_free(
        self,
        host: str,
        *,
        queued: int,
        now: float,
        max_concurrency: int | None = None,
        retry_slots: int | None = None,
    ) -> int:
        """The slots ``allot`` would give now, 0 for none; changes nothing (so a host can ask
        for proxy slots before it takes its allotment)."""
        if queued <= 0:
            return 0
        record = self._hosts.find(host)
        if record is not None and (record.budget.batches or now < record.budget.not_before):
            return 0
        limit = max_concurrency or self.max_concurrency
        return limit if retry_slots is None else max(1, min(limit, retry_slots))

    def release(self, allotment: Allotment, *, now: float) -> None:
        budget = self._hosts[allotment.host].budget
        budget.in_use -= allotment.slots
        budget.batches -= 1
        if allotment.rest_seconds > 0:
            budget.not_before = max(budget.not_before, now + allotment.rest_seconds)

    def in_use(self, host: str) -> int:
        record = self._hosts.find(host)
        return record.budget.in_use if record else 0

    def resting(self, now: float) -> dict[str, float]:
        """Hosts that may not be allotted slots before a time still to come (for a checkpoint)."""
        return {h.name: h.budget.not_before for h in self._hosts if h.budget.not_before > now}

    def rest(self, host: str, until: float) -> None:
        """Restore a rest from a checkpoint."""
        budget = self._hosts[host].budget
        budget.not_before = max(budget.not_before, until)

    def ready_at(self, host: str) -> float:
        """When the host may be allotted slots again (0 if it has no rest pending)."""
        record = self._hosts.find(host)
        return record.budget.not_before if record else 0.0
