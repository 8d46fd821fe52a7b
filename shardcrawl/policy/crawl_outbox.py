"""What the crawl has yet to send its shards (URLs, credits), made into numbered messages."""

from __future__ import annotations

from typing import Any

from shardcrawl.core import urls
from shardcrawl.models import CrawlCheckpoint, CrawlSpec, Enqueue, ShardStatus, UrlTask
from shardcrawl.policy.completion import crawl_done
from shardcrawl.policy.credit_grants import grant_cap, grants

__all__ = ["CrawlOutbox"]

# URLs per enqueue message: each message stays one small payload.
MAX_ENQUEUE_URLS = 1000


class CrawlOutbox:
    def __init__(self) -> None:
        # The seq of the last message to each shard, and of the last one with credits.
        self.sent_seq: dict[int, int] = {}
        self.granted_at_seq: dict[int, int] = {}
        self.pending_urls: dict[int, list[UrlTask]] = {}
        self.pending_credits: dict[int, int] = {}
        self.credits_left = 0

    def queue_seeds(self, spec: CrawlSpec) -> None:
        """Each seed for the shard that owns it. Credits ride along with the seeds, saving
        the shards a round trip to ask for them: each seeded shard gets the most one grant
        may be, from the whole pool."""
        for seed in spec.seeds:
            owner = urls.shard_of(urls.origin(seed), spec.shards)
            self.pending_urls.setdefault(owner, []).append(UrlTask(url=seed, depth=0))
        cap = grant_cap(spec, self.credits_left)
        for owner in sorted(self.pending_urls):
            grant = min(self.credits_left, cap)
            self.credits_left -= grant
            self.pending_credits[owner] = grant

    def grant(self, statuses: dict[int, ShardStatus], spec: CrawlSpec) -> None:
        """Give page credits to shards that asked, once they have applied the last grant."""
        for index, grant in grants(
            statuses,
            spec=spec,
            credits_left=self.credits_left,
            granted_at_seq=self.granted_at_seq,
            pending_credits=self.pending_credits,
        ).items():
            self.credits_left -= grant
            self.pending_credits[index] = grant

    def waiting(self) -> bool:
        """Whether URLs or credits wait to be sent."""
        return bool(self.pending_urls or self.pending_credits)

    def take_messages(self, *, seeds: bool) -> list[tuple[int, Enqueue]]:
        """What waits, as (shard, message) in shard order; several messages if many URLs
        wait, which the shard applies in seq order."""
        messages = []
        for index in sorted(set(self.pending_urls) | set(self.pending_credits)):
            tasks = self.pending_urls.pop(index, [])
            credits = self.pending_credits.pop(index, 0)
            if not tasks and not credits:
                continue
            for start in range(0, max(len(tasks), 1), MAX_ENQUEUE_URLS):
                self.sent_seq[index] += 1
                if credits:
                    self.granted_at_seq[index] = self.sent_seq[index]
                message = Enqueue(
                    seq=self.sent_seq[index],
                    urls=tasks[start : start + MAX_ENQUEUE_URLS],
                    credits=credits,
                    seeds=seeds,
                )
                credits = 0
                messages.append((index, message))
        return messages

    def done(self, statuses: dict[int, ShardStatus]) -> bool:
        """Whether nothing waits and the shards' statuses say the crawl is done."""
        if self.waiting():
            return False
        return crawl_done(statuses, self.sent_seq, credits_left=self.credits_left)

    def export(self) -> dict[str, Any]:
        """The checkpoint's fields of the outbox."""
        return {
            "sent_seq": self.sent_seq,
            "granted_at_seq": self.granted_at_seq,
            "pending_urls": self.pending_urls,
            "pending_credits": self.pending_credits,
            "credits_left": self.credits_left,
        }

    def restore(self, checkpoint: CrawlCheckpoint) -> None:
        self.sent_seq = dict(checkpoint.sent_seq)
        self.granted_at_seq = dict(checkpoint.granted_at_seq)
        self.pending_urls = {k: list(v) for k, v in checkpoint.pending_urls.items()}
        self.pending_credits = dict(checkpoint.pending_credits)
        self.credits_left = checkpoint.credits_left
