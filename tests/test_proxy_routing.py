"""Proxy routing, capacity shares, health and credential handling as plain logic."""

from __future__ import annotations

import pytest

from activities.proxy_assign import ProxySlots
from shardcrawl.contracts import FetchOutcome, ProxyLease, ProxySpec, ProxyStats
from shardcrawl.errors import SpecError
from shardcrawl.proxy_router import DIRECT, ProxyRouter
from shardcrawl.proxy_shares import deal_shares
from shardcrawl.proxy_urls import MissingCredential, check_proxy_url, redact, resolve
from shardcrawl.report import merge_proxies
from shardcrawl.spec import parse_spec

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


# -- shares -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacities", "shards"), [([8], 4), ([3, 2, 2], 4), ([1, 1, 1, 1, 1], 3), ([5], 7), ([9], 1)]
)
def test_shares_add_up_to_each_capacity_and_differ_by_at_most_one(capacities, shards):
    shares = deal_shares(capacities, shards)
    for i, capacity in enumerate(capacities):
        column = [shares[s][i] for s in range(shards)]
        assert sum(column) == capacity
        assert max(column) - min(column) <= 1
    if sum(capacities) >= shards:
        assert all(sum(row) >= 1 for row in shares), "a shard got nothing of the pool"


def test_a_pool_smaller_than_the_shard_count_is_refused_naming_it():
    with pytest.raises(SpecError) as err:
        parse_spec(
            {
                "seeds": ["http://a.test/"],
                "shards": 4,
                "proxies": {"pools": {"eu": {"proxies": [{"url": P1, "capacity": 3}]}}},
            }
        )
    assert "proxies.pools.eu: total capacity 3 is less than shards (4)" in str(err.value)


# -- routing ------------------------------------------------------------------------------------


def test_routes_match_subdomains_first_route_wins_and_direct_needs_no_proxy():
    router = ProxyRouter(proxy_spec(), shard=0, shard_count=1)
    assert router.lease("direct.test", slots=4, now=0) == DIRECT
    assert router.lease("www.direct.test", slots=4, now=0) == DIRECT
    assert router.route("other.test") is not None
    bare = ProxyRouter(ProxySpec(), shard=0, shard_count=1)
    assert bare.lease("a.test", slots=4, now=0) == DIRECT


def test_rotate_spreads_a_batch_over_the_pool_and_batches_over_time():
    router = ProxyRouter(proxy_spec(capacity=4), shard=0, shard_count=1)
    leases = router.lease("a.test", slots=3, now=0)
    assert {lease.proxy for lease in leases} == {P1, P2, P3}
    router.release(leases)
    used = []
    for _ in range(6):
        (one,) = router.lease("a.test", slots=1, now=0)
        used.append(one.proxy)
        router.release([one])
    assert used == [P1, P2, P3, P1, P2, P3], "one-slot batches must take turns"


def test_leases_never_exceed_the_shards_share_and_the_host_waits_when_all_are_taken():
    # 3 proxies x capacity 2 over 2 shards: this shard owns 1 slot of each.
    router = ProxyRouter(proxy_spec(capacity=2), shard=1, shard_count=2)
    first = router.lease("a.test", slots=2, now=0)
    second = router.lease("b.test", slots=4, now=0)
    assert sum(lease.slots for lease in first + second) == 3
    assert router.lease("c.test", slots=1, now=0) is None
    assert not router.available("c.test", now=0)
    router.release(first)
    assert router.available("c.test", now=0)
    stats = router.stats(now=0)
    assert [lease.proxy for lease in first] == [P1, P2]
    assert {u: (s.in_use, s.capacity) for u, s in stats.items()} == {
        P1: (0, 1),
        P2: (0, 1),
        P3: (1, 1),
    }


def test_sticky_keeps_one_identity_per_host_until_banned_then_moves():
    router = ProxyRouter(proxy_spec("sticky", capacity=4), shard=0, shard_count=1)
    assert router.available("a.test", now=0)
    assert router.session_of("a.test") is None, "asking must not start a session"
    (first,) = router.lease("a.test", slots=2, now=0)
    router.release([first])
    for _ in range(3):
        (again,) = router.lease("a.test", slots=2, now=1)
        router.release([again])
        assert again.proxy == first.proxy
    (other_host,) = router.lease("b.test", slots=2, now=1)
    router.release([other_host])
    assert other_host.proxy != first.proxy, "sticky hosts still spread over the pool"
    router.observe("a.test", [answer(first.proxy, 403, blocked="status")], now=2, jitter=0.0)
    (moved,) = router.lease("a.test", slots=2, now=3)
    router.release([moved])
    assert moved.proxy != first.proxy
    assert router.session_of("a.test") == moved.proxy
    # Banned on a.test only: the proxy still serves b.test when b's session picks it.
    assert router.health.usable(first.proxy, "b.test", now=3)
    assert not router.health.usable(first.proxy, "a.test", now=3)
    assert router.health.usable(first.proxy, "a.test", now=2 + 50)


def test_sticky_session_ends_after_its_length():
    router = ProxyRouter(proxy_spec("sticky", capacity=4), shard=0, shard_count=1)
    (first,) = router.lease("a.test", slots=1, now=0)
    router.release([first])
    (later,) = router.lease("a.test", slots=1, now=101)
    assert later.proxy != first.proxy, "a new session takes the least recently used proxy"


def test_sticky_host_waits_for_its_busy_identity_rather_than_switch():
    router = ProxyRouter(proxy_spec("sticky", capacity=1), shard=0, shard_count=1)
    (mine,) = router.lease("a.test", slots=1, now=0)
    router.release([mine])
    (taken,) = router.lease("b.test", slots=1, now=0)  # b's new session takes a free proxy
    assert taken.proxy != mine.proxy
    held = router.lease("a.test", slots=1, now=0)
    assert held is not None and held[0].proxy == mine.proxy
    assert router.lease("a.test", slots=1, now=0) is None


# -- health -------------------------------------------------------------------------------------


def test_a_refusing_proxy_cools_down_with_doubling_rests_and_recovers():
    router = ProxyRouter(proxy_spec(capacity=4), shard=0, shard_count=1)
    refused = answer(P1, None, "connection_refused")
    router.observe("a.test", [refused], now=0, jitter=0.999)
    assert not router.health.usable(P1, "a.test", now=9.9)
    assert router.health.usable(P1, "a.test", now=10)
    assert router.wake_times(now=1) == [pytest.approx(10, abs=0.01)]
    leases = router.lease("a.test", slots=3, now=5)
    assert P1 not in {lease.proxy for lease in leases}
    router.release(leases)
    router.observe("a.test", [refused], now=10, jitter=0.999)
    assert not router.health.usable(P1, "a.test", now=29.9), "the second rest is twice as long"
    router.observe("a.test", [answer(P1, latency_ms=40)], now=31, jitter=0.0)
    router.observe("a.test", [refused], now=32, jitter=0.999)
    assert router.health.usable(P1, "a.test", now=42), "a success resets the doubling"
    stats = router.stats(now=33)[P1]
    assert (stats.requests, stats.failures, stats.cooldowns, stats.state) == (4, 3, 3, "cooling")
    assert stats.mean_latency_ms == 40


def test_timeouts_rest_a_proxy_only_when_they_repeat():
    router = ProxyRouter(proxy_spec(), shard=0, shard_count=1)
    timeout = answer(P2, None, "timeout")
    router.observe("a.test", [timeout, timeout], now=0, jitter=0.0)
    assert router.health.usable(P2, "a.test", now=0)
    router.observe("a.test", [timeout], now=0, jitter=0.0)
    assert not router.health.usable(P2, "a.test", now=0)


def test_slow_or_failing_proxies_are_chosen_last():
    router = ProxyRouter(proxy_spec(capacity=4), shard=0, shard_count=1)
    for _ in range(5):
        router.observe("a.test", [answer(P1, latency_ms=9000)], now=0, jitter=0.0)
        router.observe("a.test", [answer(P2, latency_ms=100)], now=0, jitter=0.0)
    assert router.health.score(P1) < 0.5 < router.health.score(P2)
    # P1 is the least recently used, yet a slow proxy goes after the quick ones.
    assert [lease.proxy for lease in router.lease("a.test", slots=3, now=0)] == [P2, P3, P1]


def test_health_survives_export_and_restore():
    router = ProxyRouter(proxy_spec("sticky"), shard=0, shard_count=1)
    (lease,) = router.lease("a.test", slots=1, now=0)
    router.release([lease])
    router.observe("a.test", [answer(lease.proxy, 403, blocked="status")], now=1, jitter=0.0)
    router.observe("a.test", [answer(P3, None, "connection_refused")], now=1, jitter=0.0)
    copy = ProxyRouter(proxy_spec("sticky"), shard=0, shard_count=1)
    copy.restore([list(r) for r in router.export()])
    assert copy.stats(now=2) == router.stats(now=2)
    assert copy.session_of("a.test") == lease.proxy
    assert not copy.health.usable(lease.proxy, "a.test", now=2)


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


def test_shards_proxy_stats_merge_into_the_crawls():
    mine = ProxyStats(pool="main", requests=3, responses=2, latency_ms_total=100, capacity=1)
    theirs = ProxyStats(
        pool="main", requests=5, responses=3, latency_ms_total=500, capacity=1, state="cooling",
        cooling_until=42.0, banned_on=["b.test"], in_use=1,
    )  # fmt: skip
    assert (mine.mean_latency_ms, theirs.mean_latency_ms) == (50.0, 166.7)
    merged = merge_proxies([{P1: mine}, {P1: theirs, P2: ProxyStats(pool="main")}])
    assert list(merged) == [P1, P2]
    crawl = merged[P1]
    assert (crawl.requests, crawl.responses, crawl.capacity, crawl.in_use) == (8, 5, 2, 1)
    assert crawl.mean_latency_ms == 120.0
    assert (crawl.state, crawl.cooling_until, crawl.banned_on) == ("cooling", 42.0, ["b.test"])
