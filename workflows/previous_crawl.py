"""Reading an incremental crawl's previous URLs into the shard, a page of them at a time."""

from __future__ import annotations

from shardcrawl.models import PreviousCrawlPage, PreviousCrawlRequest, ShardInput
from shardcrawl.policy.shard_engine import ShardEngine
from shardcrawl.workflows.run_size import RunSize
from shardcrawl.workflows.shard_activities import ShardActivities

__all__ = ["PreviousCrawl"]


class PreviousCrawl:
    def __init__(
        self, shard: ShardInput, engine: ShardEngine, activities: ShardActivities, size: RunSize
    ) -> None:
        self._input = shard
        self._engine = engine
        self._activities = activities
        self._size = size
        # Where the next page starts (part of the shard's checkpoint).
        self.next = 0

    def reading(self) -> bool:
        """Whether the previous crawl's item files (incremental crawl) are not all read."""
        return self.next < self._input.previous_crawl_files

    async def load_page(self) -> None:
        """A page of the previous crawl's URLs (incremental crawl): queued like seeds, so that
        every page of it is asked for again, conditionally."""
        assert self._input.previous_crawl is not None
        request = PreviousCrawlRequest(
            output=self._input.spec.output,
            crawl_id=self._input.crawl_id,
            previous_crawl=self._input.previous_crawl,
            shard=self._input.shard,
            start=self.next,
        )
        page = await self._activities.store("previous_crawl_urls", request, PreviousCrawlPage)
        self._size.note(page)
        self.next = page.next
        for task in page.urls:
            self._engine.route(task, is_link=False)
