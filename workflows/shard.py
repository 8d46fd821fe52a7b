"""DomainShardWorkflow: the one owner of its hosts' frontier, seen-set and politeness budget.

A thin shell over ``ShardEngine`` (shardcrawl/shard_engine.py), which makes every decision: the
shell takes URLs and page credits from its parent (``enqueue``), runs the ``crawl_batch`` and
``fetch_robots`` activities the engine plans, hands it their results, sends links owned by
other shards straight to them (``links``), and its idleness, credit needs and link counts to
the parent (``shard_status``).

Before its history grows large it continues as new: it stops dispatching, lets its batches
land, writes the engine's state to the store as segments (a claim-check: history holds only
their keys), and hands the keys, its small counters and any message that arrived meanwhile to
its next run. When told to finish, it stores its per-host counters the same way and signals
its result to the parent, which may itself be a later run than the one that started the shard.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from shardcrawl.core.errors import root_cause
from shardcrawl.models import (
    Enqueue,
    FetchOptions,
    HostStats,
    LinkMessage,
    ShardCheckpoint,
    ShardFailure,
    ShardInput,
    ShardResult,
    ShardStatus,
    ShardTotals,
)
from shardcrawl.models.proxy_messages import ProxyGrants
from shardcrawl.policy.dispatch_planner import DispatchPlan
from shardcrawl.policy.link_counts import LinkCounts
from shardcrawl.policy.segments import pack_records
from shardcrawl.policy.shard_engine import ShardEngine
from shardcrawl.policy.status_trigger import StatusTrigger
from shardcrawl.workflows.in_flight import InFlight
from shardcrawl.workflows.parent import crawl_parent
from shardcrawl.workflows.previous_crawl import PreviousCrawl
from shardcrawl.workflows.run_size import RunSize
from shardcrawl.workflows.shard_activities import CANCELLED, ShardActivities
from shardcrawl.workflows.shard_fetches import ShardFetches
from shardcrawl.workflows.shard_metrics import ShardMetrics
from shardcrawl.workflows.shard_signals import send_links, talk_to_broker
from shardcrawl.workflows.shard_state import load_engine_state, save_engine_state
from shardcrawl.workflows.wake_alarm import WakeAlarm

__all__ = ["DomainShardWorkflow"]

CANCEL_GRACE = timedelta(seconds=30)


@workflow.defn(name="DomainShardWorkflow")
class DomainShardWorkflow:
    @workflow.init
    def __init__(self, shard: ShardInput) -> None:
        """Runs before any signal handler, so a signal that arrives with a new run's first
        task already sees the checkpoint's counters and flags (and wins over them)."""
        self._inbox: dict[int, Enqueue] = {}
        self._processed_seq = 0
        # Link messages from other shards, not yet applied, and the counts of those sent
        # and applied (reported to the parent, which ends the crawl only when they match).
        self._link_inbox: list[LinkMessage] = []
        self._links = LinkCounts()
        self._finish = False
        self._cancel = False
        self._paused = False
        self._dirty = False
        # The timer that wakes the loop at the engine's next wake-up.
        self._alarm = WakeAlarm(self._wake)
        self._in_flight = InFlight(on_done=self._wake)
        self._batch_seq = 0
        self._records_seq = 0
        self._status_trigger = StatusTrigger()
        self._draining = False
        self._generation = 0
        self._size = RunSize(events_per_run=shard.spec.history_events_per_run)
        self._input = shard
        self._spec = shard.spec
        self._engine = ShardEngine(
            shard.spec,
            shard=shard.shard,
            shard_count=shard.shard_count,
            clock=lambda: workflow.now().timestamp(),
            random=lambda: workflow.random().random(),
            incremental=shard.previous_crawl is not None,
            generation=shard.checkpoint.generation if shard.checkpoint else 0,
        )
        self._activities = ShardActivities(shard, self._size, on_store_back=self._wake)
        self._metrics = ShardMetrics(self._engine)
        self._previous_crawl = PreviousCrawl(shard, self._engine, self._activities, self._size)
        self._size.note(shard)
        if shard.checkpoint is not None:
            self._restore_counters(shard.checkpoint)

    @workflow.signal
    def enqueue(self, message: Enqueue) -> None:
        """Idempotent: a message is applied once, in ``seq`` order."""
        self._size.note(message)
        if message.seq > self._processed_seq:
            self._inbox[message.seq] = message
            self._dirty = True

    @workflow.signal
    def links(self, message: LinkMessage) -> None:
        """Links this shard owns, from another shard; applied once (``LinkCounts``)."""
        self._size.note(message)
        self._link_inbox.append(message)
        self._dirty = True

    @workflow.signal
    def finish(self, cancel: bool) -> None:
        self._finish = True
        self._cancel = self._cancel or cancel
        self._dirty = True

    @workflow.signal
    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._dirty = True

    @workflow.query
    def totals(self) -> ShardTotals:
        return self._totals()

    @workflow.query
    def hosts(self, limit: int) -> dict[str, HostStats]:
        """The ``limit`` busiest hosts, and every parked or abandoned one, for live status."""
        return self._engine.busiest_hosts(limit)

    @workflow.signal
    def proxy_grants(self, message: ProxyGrants) -> None:
        """Proxy slots from the crawl's broker, for hosts that asked."""
        self._size.note(message)
        self._engine.proxy_grants(message)
        self._dirty = True

    @workflow.query
    def fleets(self) -> dict[str, int]:
        """Activities in flight on each fleet the routes name, for live status (which asks
        Temporal whether any worker serves them)."""
        return self._engine.fleet_load()

    @workflow.run
    async def run(self, shard: ShardInput) -> ShardResult:
        # Stored once by the parent (prepare_crawl); activity inputs name them by digest.
        fetch = FetchOptions.from_spec(shard.spec)
        self._fetches = ShardFetches(shard, self._engine, self._activities, self._size, fetch)
        self._parent = crawl_parent("DomainShardWorkflow")
        try:
            if shard.checkpoint is not None:
                await load_engine_state(self._engine, self._activities, shard, shard.checkpoint)
            self._size.started()
            result = await self._crawl()
        except CANCELLED:
            raise
        except Exception as exc:
            # A parent run that did not start this shard cannot see it fail: tell it.
            failure = ShardFailure(shard=shard.shard, message=root_cause(exc))
            await self._parent.signal("shard_failed", failure)
            raise
        await self._parent.signal("shard_finished", result)
        return result

    async def _crawl(self) -> ShardResult:
        while True:
            self._dirty = False
            if self._in_flight.failure is not None:
                raise self._in_flight.failure
            if self._previous_crawl.reading() and not self._draining:
                await self._previous_crawl.load_page()
            self._apply_inbox()
            self._dispatch()
            await talk_to_broker(self._engine.proxies, self._input, self._size, closing=False)
            if self._engine.has_records():
                await self._write_records()
            self._metrics.export(self._input.crawl_id, self._input.shard)
            await self._send_status()
            if self._finish:
                break
            if self._size.should_continue_as_new():
                if not self._draining:
                    self._start(self._engine.release_held())  # the next run holds none
                self._draining = True
                # A batch that landed while sending its status may have left links to send first.
                if not self._in_flight and not self._engine.has_forwards():
                    await self._continue_as_new()
                    continue
            if self._previous_crawl.reading() and not self._draining:
                continue  # more of the previous crawl's URLs to queue first
            wake = self._next_wake()
            if wake == timedelta(0):
                continue  # a wait ended while sending its status: dispatch again first
            # The alarm means a resting host may be allotted slots, or a retry may go, now.
            self._alarm.arm(wake)
            await workflow.wait_condition(lambda: self._dirty)
        self._alarm.arm(None)
        held = self._engine.release_held()
        if self._cancel:
            for parts in held.batches:
                self._engine.cut_off(parts)
        else:
            self._start(held)
        # On cancel, batches are cut off after a grace period, so that a crawl whose workers
        # are gone still stops.
        await self._in_flight.land(CANCEL_GRACE if self._cancel else None)
        await talk_to_broker(self._engine.proxies, self._input, self._size, closing=True)
        await self._write_records()
        hosts = await self._activities.save_segments(
            "final", "hosts", pack_records(self._engine.export("hosts")), self._generation + 1
        )
        return ShardResult(
            shard=self._input.shard,
            totals=self._totals(),
            hosts_segments=hosts,
            unfetched=self._engine.frontier.queued(),
            series=self._engine.stats.series,
        )

    # -- incoming URLs -------------------------------------------------------------------------

    def _apply_inbox(self) -> None:
        while self._processed_seq + 1 in self._inbox:
            message = self._inbox.pop(self._processed_seq + 1)
            self._processed_seq = message.seq
            self._engine.add_credits(message.credits)
            for task in message.urls:
                if message.seeds:
                    self._engine.add_seed(task)
                else:
                    self._engine.accept(task, is_link=True)
        links, self._link_inbox = self._link_inbox, []
        for link_message in links:
            if self._links.apply(link_message.sender, link_message.seq):
                for task in link_message.tasks():
                    self._engine.accept(task, is_link=True)

    # -- activities the engine plans -----------------------------------------------------------

    def _dispatch(self) -> None:
        """Run what the engine plans, unless dispatch is off: paused, finishing, draining for
        continue-as-new, or waiting for the store."""
        if self._paused or self._finish or self._draining or self._activities.store_down_since:
            return
        self._start(self._engine.plan())

    def _start(self, plan: DispatchPlan) -> None:
        for parts in plan.batches:
            self._batch_seq += 1
            self._in_flight.start(self._fetches.batch(self._batch_seq, parts))
        for targets in plan.robots:
            self._in_flight.start(self._fetches.robots(targets))
        for sitemaps in plan.sitemaps:
            self._in_flight.start(self._fetches.sitemaps(sitemaps))

    async def _write_records(self) -> None:
        """Records of URLs that ended in the shard, into the crawl's items."""
        records = self._engine.take_records()
        self._records_seq = await self._activities.write_records(records, self._records_seq)

    # -- status to the parent ----------------------------------------------------------------------

    def _totals(self) -> ShardTotals:
        totals = self._engine.totals()
        totals.history_length = workflow.info().get_current_history_length()
        totals.largest_payload_bytes = self._size.largest_payload
        totals.continued_as_new = self._generation
        totals.store_down_since = self._activities.store_down_since
        totals.store_down_cause = self._activities.store_down_cause
        return totals

    async def _send_status(self) -> None:
        """Send the links other shards own, then tell the parent what changed; awaited, so
        a status always follows the link messages it counts."""
        if self._engine.forwards_due():
            await self._send_links()
        idle = not self._previous_crawl.reading() and self._engine.idle() and not self._link_inbox
        ask = self._engine.ask_credits(idle=idle)
        sent, applied = self._links.sent(), self._links.applied()
        if not self._status_trigger.due(
            idle=idle,
            processed_seq=self._processed_seq,
            sent=sent,
            applied=applied,
            wants=ask.wants,
            returned=ask.returned,
        ):
            return
        status = ShardStatus(
            shard=self._input.shard,
            processed_seq=self._processed_seq,
            idle=idle,
            wants_credits=ask.wants,
            returned_credits=ask.returned,
            sent=sent,
            applied=applied,
            totals=self._totals(),
        )
        self._size.note(status)
        await self._parent.signal("shard_status", status)

    async def _send_links(self) -> None:
        await send_links(
            self._engine.take_forwards(),
            crawl_id=self._input.crawl_id,
            sender=self._input.shard,
            links=self._links,
            size=self._size,
            finishing=self._finish,
        )

    def _wake(self) -> None:
        """Wake the main loop (the alarm rang, a task ended, the store is back)."""
        self._dirty = True

    def _next_wake(self) -> timedelta | None:
        """When the engine next has something to do by the clock (zero: already due). None
        while dispatch is off (paused, draining for continue-as-new, waiting on the store):
        then only a message, a landing batch or the store's return wakes the shard."""
        if self._paused or self._draining or self._activities.store_down_since:
            return None
        seconds = self._engine.next_wake()
        return None if seconds is None else timedelta(seconds=seconds)

    # -- continue-as-new with claim-checked state ------------------------------------------------

    async def _continue_as_new(self) -> None:
        """Store the state and continue as new; returns only if told to finish meanwhile."""
        generation = self._generation + 1
        self._apply_inbox()
        engine = self._engine
        segments = await save_engine_state(engine, self._activities, generation)
        checkpoint = ShardCheckpoint(
            generation=generation,
            processed_seq=self._processed_seq,
            credits=engine.credits,
            paused=self._paused,
            batch_seq=self._batch_seq,
            records_seq=self._records_seq,
            totals=engine.stats.totals.model_copy(
                update={"largest_payload_bytes": self._size.largest_payload}
            ),
            resting=engine.resting(),
            previous_crawl_next=self._previous_crawl.next,
            series=engine.stats.series,
            **segments,
        )
        if self._finish:
            return
        # Nothing awaits from here on: every message that arrived while saving is either
        # applied (none: applying happens in the loop) or carried over below.
        checkpoint.paused = self._paused
        checkpoint.pending = [
            self._inbox[seq] for seq in sorted(self._inbox) if seq > self._processed_seq
        ]
        checkpoint.pending_links = self._link_inbox
        checkpoint.link_counts = self._links.export()
        next_input = self._input.model_copy(update={"checkpoint": checkpoint})
        self._size.note(next_input)
        self._alarm.arm(None)
        workflow.continue_as_new(next_input)

    def _restore_counters(self, checkpoint: ShardCheckpoint) -> None:
        self._generation = checkpoint.generation
        self._size.carry(checkpoint.totals.largest_payload_bytes)
        self._processed_seq = checkpoint.processed_seq
        self._engine.credits = checkpoint.credits
        self._paused = checkpoint.paused
        self._batch_seq = checkpoint.batch_seq
        self._records_seq = checkpoint.records_seq
        self._previous_crawl.next = checkpoint.previous_crawl_next
        self._engine.stats.restore(checkpoint.totals, {}, series=checkpoint.series)
        self._metrics.exported = {
            "links": checkpoint.totals.links_discovered,
            "duplicates": checkpoint.totals.duplicates,
        }
        self._engine.restore_resting(checkpoint.resting)
        for message in checkpoint.pending:
            self.enqueue(message)
        self._links.restore(checkpoint.link_counts)
        for link_message in checkpoint.pending_links:
            self.links(link_message)
