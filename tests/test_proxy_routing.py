"""Proxy leasing (the broker and a shard's side of it), fleet-wide health, a batch's slots and
credential handling, as plain logic."""

from __future__ import annotations

from collections import Counter

import pytest

from shardcrawl.activities.proxy_assign import ProxySlots
from shardcrawl.core.errors import SpecError
from shardcrawl.core.proxy_urls import MissingCredential, check_proxy_url, redact, resolve
from shardcrawl.models import FetchOutcome, ProxyLease, ProxySpec
from shardcrawl.models.proxy_messages import ProxyAsk, ProxyAsks, ProxyGrant, ProxyGrants, ProxyUse
from shardcrawl.models.validation import parse_spec
from shardcrawl.policy.proxy_broker import ProxyBroker
from shardcrawl.policy.proxy_router import BATCH, ROBOTS, ProxyRouter, brokered
from shardcrawl.policy.shard_engine import PARTIAL_ROTATION_REQUESTS

P1, P2, P3 = "http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"


def proxy_spec(mode: str = "rotate", capacity: int = 2, **more: object) -> ProxySpec:
    return ProxySpec.model_validate(
        {
            "pools": {
                "main": {"proxies": [{"url": u, "capacity": capacity} for u in (P1, P2, P3)]}
            },
            "routes": [
                {"domains": ["direct.test"], "mode": "direct"},
                {"domains": ["*"], "mode": mode, "pool": "main", "session_seconds": 100},
            ],
            "cooldown_seconds": 10,
            "ban_seconds": 50,
            **more,
        }
    )


def answer(proxy: str, status: int | None = 200, error: str | None = None, **kw: object):
    return FetchOutcome(url="http://a.test/", status=status, error=error, proxy=proxy, **kw)


# -- the broker: capacity, rotation, stickiness, fleet-wide health -------------------------------


def ask(broker: ProxyBroker, shard: int, ask_id: int, host: str, slots: int, now: float = 0):
    """One ask, and what the broker grants it now (None: it waits)."""
    broker.receive(
        ProxyAsks(shard=shard, asks=[ProxyAsk(id=ask_id, host=host, slots=slots)]),
        now=now,
        jitter=0.0,
    )
    return next((g for g in broker.grant(now).get(shard, []) if g.id == ask_id), None)


def give_back(broker, shard, lease_id, *uses: ProxyUse, now: float = 0, generation: int = 0):
    broker.receive(
        ProxyAsks(shard=shard, generation=generation, releases=[lease_id], uses=list(uses)),
        now=now,
        jitter=0.999,
    )


def ok(proxy: str, host: str = "a.test", n: int = 1) -> ProxyUse:
    return ProxyUse(proxy=proxy, host=host, answers=n, latency_ms=40 * n)


def proven_broker(spec: ProxySpec) -> ProxyBroker:
    """A broker whose proxies have each carried a request (so each may serve many leases)."""
    broker = ProxyBroker(spec)
    for url in (P1, P2, P3):
        broker.health.observe(ok(url), now=0, jitter=0.0)
    return broker


def test_rotate_spans_the_whole_pool_whichever_shard_asks():
    broker = proven_broker(proxy_spec(capacity=4))
    for shard in range(4):
        grant = ask(broker, shard, 1, f"h{shard}.test", 3)
        assert {lease.proxy for lease in grant.leases} == {P1, P2, P3}
        assert not grant.partial
        give_back(broker, shard, 1)
    used = []
    for n in range(6):
        grant = ask(broker, n % 4, 10 + n, "one.test", 1)
        used.append(grant.leases[0].proxy)
        assert grant.partial, "one slot of three healthy proxies: the batch is kept short"
        give_back(broker, n % 4, 10 + n)
    assert used == [P1, P2, P3, P1, P2, P3], "one-slot leases take turns, fleet-wide"


def test_capacity_holds_fleet_wide_and_no_share_sits_idle():
    broker = proven_broker(proxy_spec(capacity=2))
    # One shard may take every slot of the pool: nothing is reserved for the others.
    first = ask(broker, 0, 1, "a.test", 6)
    assert sum(lease.slots for lease in first.leases) == 6
    assert ask(broker, 1, 1, "b.test", 2) is None, "the pool is full: shard 1 waits"
    assert broker.stats(0)[P1].in_use == 2 and broker.stats(0)[P1].capacity == 2
    give_back(broker, 0, 1)
    granted = broker.grant(0)
    assert [g.id for g in granted[1]] == [1], "the waiting ask is served once slots are back"
    # Whatever the asks, no proxy is ever leased past its capacity.
    for n in range(2, 40):
        ask(broker, n % 3, n, f"h{n}.test", 1 + n % 4)
        assert all(s.in_use <= s.capacity for s in broker.stats(0).values())


def test_a_proxy_still_to_prove_itself_serves_one_fetch_at_a_time():
    broker = ProxyBroker(proxy_spec(capacity=4, cooldown_seconds=1))
    first = ask(broker, 0, 1, "a.test", 3)
    assert {(lease.proxy, lease.slots) for lease in first.leases} == {(P1, 1), (P2, 1), (P3, 1)}
    assert ask(broker, 1, 1, "b.test", 3) is None, "unproven proxies: one fetch each"
    dead = ProxyUse(proxy=P3, host="a.test", failures=["connection_refused"])
    give_back(broker, 0, 1, ok(P1), ok(P2), dead, now=0.1)
    second = broker.grant(0.1)[1][0]
    assert {lease.proxy for lease in second.leases} == {P1, P2}, "P3 rests, fleet-wide"
    assert second.partial is False, "P3 is not healthy now: the pool's healthy ones are covered"
    assert sum(lease.slots for lease in second.leases) == 3, "proven proxies take many slots"
    # After its rest the dead proxy is tried by one fetch only, then rests twice as long.
    tries = []
    for n, now in enumerate([1.2, 1.3, 1.4]):
        grant = ask(broker, 2 + n, 1, f"c{n}.test", 3, now=now)
        if grant and P3 in {lease.proxy for lease in grant.leases}:
            tries.append(2 + n)
    assert tries == [2], tries
    give_back(broker, 2, 1, ProxyUse(proxy=P3, host="c0.test", failures=["tunnel"]), now=1.5)
    assert not broker.health.usable(P3, "x.test", now=2.4), "the second rest is longer"
    stats = broker.stats(1.5)[P3]
    assert (stats.requests, stats.failures, stats.cooldowns, stats.state) == (2, 2, 2, "cooling")


def test_sticky_picks_from_the_whole_pool_and_moves_when_banned():
    broker = proven_broker(proxy_spec("sticky", capacity=4))
    identities = set()
    for shard in range(3):
        grant = ask(broker, shard, 1, f"s{shard}.test", 2)
        (lease,) = grant.leases
        identities.add(lease.proxy)
        give_back(broker, shard, 1)
        for n in range(2, 5):
            again = ask(broker, shard, n, f"s{shard}.test", 2, now=1)
            assert again.leases[0].proxy == lease.proxy
            give_back(broker, shard, n, now=1)
    assert identities == {P1, P2, P3}, "sticky hosts of every shard spread over the pool"
    mine = broker.session_of("s0.test")
    banned = ProxyUse(proxy=mine, host="s0.test", blocks=1)
    broker.receive(ProxyAsks(shard=0, uses=[banned]), now=2, jitter=0.0)
    moved = ask(broker, 0, 9, "s0.test", 1, now=3)
    assert moved.leases[0].proxy != mine and broker.session_of("s0.test") == moved.leases[0].proxy
    assert broker.health.usable(mine, "s1.test", now=3), "banned on one host only"
    assert broker.health.usable(mine, "s0.test", now=2 + 50)


def test_a_sticky_session_ends_after_its_length_and_waits_for_its_busy_identity():
    broker = proven_broker(proxy_spec("sticky", capacity=1))
    first = ask(broker, 0, 1, "a.test", 1)
    assert ask(broker, 0, 2, "a.test", 1) is None, "its identity is busy: it waits for it"
    give_back(broker, 0, 1)
    assert broker.grant(0)[0][0].leases == first.leases
    give_back(broker, 0, 2)
    later = ask(broker, 0, 3, "a.test", 1, now=101)
    assert later.leases[0].proxy != first.leases[0].proxy, "a new session, least recently used"


def test_a_shards_later_run_or_last_message_ends_what_it_held():
    broker = proven_broker(proxy_spec(capacity=1))
    assert ask(broker, 0, 1, "a.test", 3) is not None
    assert ask(broker, 0, 2, "b.test", 3) is None
    assert ask(broker, 1, 1, "c.test", 3) is None
    # Shard 0 continued as new: its old lease and ask are over, and shard 1 is served.
    broker.receive(ProxyAsks(shard=0, generation=1), now=0, jitter=0.0)
    assert [g.id for g in broker.grant(0)[1]] == [1]
    give_back(broker, 0, 1, generation=0)  # a message from the old run changes nothing
    assert sum(s.in_use for s in broker.stats(0).values()) == 3
    broker.receive(ProxyAsks(shard=1, closing=True), now=0, jitter=0.0)
    assert sum(s.in_use for s in broker.stats(0).values()) == 0


def test_timeouts_rest_a_proxy_only_when_they_repeat_and_slow_ones_go_last():
    broker = proven_broker(proxy_spec(capacity=4))
    broker.health.observe(ProxyUse(proxy=P2, host="a", failures=["timeout"] * 2), now=0, jitter=0)
    assert broker.health.usable(P2, "a.test", now=0)
    broker.health.observe(ProxyUse(proxy=P2, host="a", failures=["timeout"]), now=0, jitter=0)
    assert not broker.health.usable(P2, "a.test", now=0)
    slow = ProxyUse(proxy=P1, host="a.test", answers=5, latency_ms=5 * 9000)
    broker.health.observe(slow, now=100, jitter=0.0)
    broker.health.observe(ok(P2), now=100, jitter=0.0)  # back from its rest
    assert broker.health.score(P1) < 0.5
    grant = ask(broker, 0, 1, "a.test", 3, now=100)
    assert [lease.proxy for lease in grant.leases] == [P2, P3, P1]


def test_the_broker_survives_continue_as_new():
    broker = ProxyBroker(proxy_spec("sticky"))
    held = ask(broker, 0, 1, "a.test", 1)
    broker.receive(ProxyAsks(shard=1, generation=2), now=0, jitter=0.0)
    ask(broker, 1, 7, "b.test", 1)
    broker.health.observe(ProxyUse(proxy=P3, host="a", failures=["dns"]), now=1, jitter=0.0)
    copy = ProxyBroker(proxy_spec("sticky"))
    copy.restore([list(r) for r in broker.export(now=1)])
    assert copy.stats(now=2) == broker.stats(now=2)
    assert copy.session_of("a.test") == held.leases[0].proxy
    assert copy.generation_of(1) == 2 and copy.export(now=1) is not None
    assert list(copy.export(now=1)) == list(broker.export(now=1))


def test_rotation_stays_within_20_percent_of_even_over_any_100_requests():
    """A shard's loop over the pure parts: asks, grants, batches cut short when a lease is
    partial, requests spread in the batch; two healthy proxies and a dead one."""
    for concurrency in (1, 2, 3, 5):
        broker = ProxyBroker(proxy_spec(capacity=8))
        router = ProxyRouter(proxy_spec(capacity=8), shard=0)
        sent: list[str] = []
        now = 0.0
        while len(sent) < 400:
            now += 0.5
            grant = router.take(BATCH, "a.test", concurrency)
            if grant is None:
                broker.receive(router.take_message(), now=now, jitter=0.5)
                router.receive(ProxyGrants(generation=0, grants=broker.grant(now).get(0, [])))
                continue
            count = PARTIAL_ROTATION_REQUESTS * len(grant.leases) if grant.partial else 50
            slots = ProxySlots(grant.leases)
            outcomes = []
            for _ in range(count):
                name = slots.take()
                assert name is not None
                dead = name == P3
                slots.give(name, failed=dead)
                outcomes.append(answer(name, None, "connection_refused") if dead else answer(name))
                if not dead:
                    sent.append(name)
            router.observe("a.test", outcomes)
            router.release(BATCH, "a.test")
        for start in range(len(sent) - 100):
            window = Counter(sent[start : start + 100])
            assert set(window) <= {P1, P2}
            assert abs(window[P1] - 50) <= 20 and abs(window[P2] - 50) <= 20, (concurrency, window)


# -- a shard's side -----------------------------------------------------------------------------


def test_a_shard_asks_once_uses_its_grant_and_gives_back_what_it_did_not_use():
    router = ProxyRouter(proxy_spec(), shard=3)
    assert router.route("direct.test") is None and router.route("www.direct.test") is None
    assert router.route("other.test") is not None
    assert ProxyRouter(ProxySpec(), shard=0).route("a.test") is None
    assert router.take(BATCH, "a.test", 2) is None
    assert router.take(BATCH, "a.test", 2) is None and router.waits(BATCH, "a.test")
    assert router.take(ROBOTS, "a.test", 1) is None
    message = router.take_message()
    assert [(a.host, a.slots) for a in message.asks] == [("a.test", 2), ("a.test", 1)]
    lease = [ProxyLease(proxy=P1, slots=2)]
    first, robots = (a.id for a in message.asks)
    hosts = router.receive(
        ProxyGrants(
            generation=0,
            grants=[ProxyGrant(id=first, leases=lease), ProxyGrant(id=99, leases=lease)],
        )
    )
    assert hosts == ["a.test"]
    assert router.take(BATCH, "a.test", 2).leases == lease
    router.receive(ProxyGrants(generation=0, grants=[ProxyGrant(id=robots, leases=lease)]))
    router.return_unused()  # the pass did not use the robots.txt grant
    router.observe(
        "a.test",
        [answer(P1, latency_ms=30), answer(P1, 403, blocked="status"), answer(P1, None, "dns")],
    )
    router.release(BATCH, "a.test")
    message = router.take_message()
    assert sorted(message.releases) == sorted([99, robots, first])
    assert message.uses == [
        ProxyUse(proxy=P1, host="a.test", answers=1, latency_ms=30, blocks=1, failures=["dns"])
    ]
    assert not router.has_message() and not router.holds()
    # Grants for an earlier run are not this run's (the broker ended them at its hello).
    later = ProxyRouter(proxy_spec(), shard=3, generation=1)
    assert later.has_message(), "a later run says hello"
    assert later.receive(ProxyGrants(generation=0, grants=[ProxyGrant(id=1, leases=lease)])) == []


def test_direct_routes_need_no_broker_and_a_pool_may_be_smaller_than_the_shard_count():
    spec = parse_spec(
        {
            "seeds": ["http://a.test/"],
            "shards": 4,
            "proxies": {"pools": {"eu": {"proxies": [{"url": P1, "capacity": 3}]}}},
        }
    )
    assert spec.proxies.pools["eu"].proxies[0].capacity == 3
    assert not brokered(ProxySpec())
    direct_only = {"routes": [{"domains": ["*"], "mode": "direct"}]}
    assert not brokered(ProxySpec.model_validate(direct_only))
    assert brokered(proxy_spec())


# -- credentials --------------------------------------------------------------------------------


def test_credentials_are_names_in_the_spec_and_values_only_on_the_worker():
    url = "http://${LAB_USER}:${LAB_PASS}@10.0.0.1:8080"
    assert check_proxy_url(url) == url
    assert resolve(url, {"LAB_USER": "bob", "LAB_PASS": "p@ss:/w"}) == (
        "http://bob:p%40ss%3A%2Fw@10.0.0.1:8080"
    )
    with pytest.raises(MissingCredential, match="LAB_PASS"):
        resolve(url, {"LAB_USER": "bob"})
    assert redact("GET via http://bob:hunter2@10.0.0.1:8080 failed") == (
        "GET via http://***@10.0.0.1:8080 failed"
    )
    assert redact(url) == url


def test_a_password_holding_an_at_sign_is_hidden_whole():
    text = "GET via http://bob:p@ss@10.0.0.1:8080/x failed, then https://u:a@b@c@gw.test"
    hidden = "GET via http://***@10.0.0.1:8080/x failed, then https://***@gw.test"
    assert redact(text) == hidden
    assert redact(text, keep_placeholders=False) == hidden
    assert redact("http://${LAB_USER}:p@ss@10.0.0.1:8080") == "http://***@10.0.0.1:8080"


def test_placeholders_stay_unless_asked_otherwise():
    url = "http://${LAB_USER}:${LAB_PASS}@10.0.0.1:8080"
    assert redact(url) == url
    assert redact(url, keep_placeholders=False) == "http://***@10.0.0.1:8080"
    assert (
        redact("s3://bucket/a@b and http://10.0.0.1/@x") == "s3://bucket/a@b and http://10.0.0.1/@x"
    )


def test_a_literal_password_in_a_spec_is_refused_without_echoing_it():
    with pytest.raises(SpecError) as err:
        parse_spec(
            {
                "seeds": ["http://a.test/"],
                "proxies": {"pools": {"eu": {"proxies": ["http://bob:hunter2@10.0.0.1:8080"]}}},
            }
        )
    message = str(err.value)
    assert "proxies.pools.eu.proxies.0.url" in message and "${VARIABLE}" in message
    assert "hunter2" not in message and "bob" not in message


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ([{"domains": ["a.test"], "pool": "nope"}], "routes[0] names pool 'nope'"),
        ([{"domains": ["a.test"], "mode": "sticky"}], "a sticky route needs a pool"),
        ([{"domains": ["a.test"], "mode": "direct", "pool": "eu"}], "a direct route takes no pool"),
    ],
)
def test_bad_routes_name_what_is_wrong(routes, expected):
    with pytest.raises(SpecError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(
            {
                "seeds": ["http://a.test/"],
                "shards": 1,
                "proxies": {"pools": {"eu": {"proxies": [P1]}}, "routes": routes},
            }
        )


# -- a batch's slots ----------------------------------------------------------------------------


def test_batch_slots_take_turns_and_never_exceed_a_lease():
    slots = ProxySlots([ProxyLease(proxy=P1, slots=2), ProxyLease(proxy=P2, slots=1)])
    taken = [slots.take() for _ in range(4)]
    assert taken == [P1, P2, P1, None]
    waiter = slots.wait()
    fired: list[bool] = []
    waiter.addCallback(lambda _: fired.append(True))
    slots.give(P2)
    assert fired == [True]
    assert slots.take() == P2


def test_a_proxy_that_fails_in_a_batch_carries_none_of_the_hosts_others():
    slots = ProxySlots([ProxyLease(proxy=P1, slots=1), ProxyLease(proxy=P2, slots=1)])
    assert slots.take() == P1
    slots.give(P1, failed=True)
    assert [slots.take(), slots.take()] == [P2, None]
    slots.give(P2, failed=True)
    assert slots.take() in (P1, P2), "every proxy failed: they are all tried again"
