"""Counts of the link messages a shard has sent to each other shard and applied from each, so
that the crawl can tell that no message is still on its way before it ends.

Shards send links straight to the owning shard. The parent then sees no link, only each
shard's counts in its statuses: the crawl is done when every shard's last status is idle and,
for every pair of shards, what the sender says it sent equals what the receiver says it
applied (docs/architecture.md, "Links between shards", argues why that cannot end early).

A message carries the sender's sequence number for that receiver, so one delivered twice is
applied once. Plain and deterministic; part of the shard's checkpoint.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LinkCounts"]


class LinkCounts:
    def __init__(self) -> None:
        self._sent: dict[int, int] = {}
        # Per sender: every seq up to ``_through`` is applied, and those in ``_ahead`` too.
        self._through: dict[int, int] = {}
        self._ahead: dict[int, set[int]] = {}

    def next_seq(self, receiver: int) -> int:
        """Sequence number of the next message to ``receiver`` (counted as sent)."""
        self._sent[receiver] = self._sent.get(receiver, 0) + 1
        return self._sent[receiver]

    def apply(self, sender: int, seq: int) -> bool:
        """Whether message ``seq`` from ``sender`` is new; if so it is counted as applied."""
        through = self._through.get(sender, 0)
        ahead = self._ahead.setdefault(sender, set())
        if seq <= through or seq in ahead:
            return False
        ahead.add(seq)
        while through + 1 in ahead:
            through += 1
            ahead.remove(through)
        self._through[sender] = through
        if not ahead:
            del self._ahead[sender]
        return True

    def sent(self) -> dict[int, int]:
        return dict(sorted(self._sent.items()))

    def applied(self) -> dict[int, int]:
        senders = set(self._through) | set(self._ahead)
        return {s: self._through.get(s, 0) + len(self._ahead.get(s, ())) for s in sorted(senders)}

    def export(self) -> dict[str, Any]:
        return {
            "sent": self._sent,
            "through": self._through,
            "ahead": {s: sorted(seqs) for s, seqs in self._ahead.items()},
        }

    def restore(self, record: dict[str, Any]) -> None:
        self._sent = {int(k): v for k, v in record.get("sent", {}).items()}
        self._through = {int(k): v for k, v in record.get("through", {}).items()}
        self._ahead = {int(k): set(v) for k, v in record.get("ahead", {}).items()}
