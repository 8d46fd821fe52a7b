"""The shard frontier: breadth-first per-origin queues and the fingerprint seen-set."""

from __future__ import annotations

import random

import pytest

from shardcrawl.models import RequestData, UrlTask
from shardcrawl.policy.frontier import Frontier, RecentSet

A = "https://a.example"
B = "https://b.example"


def task(url: str, depth: int = 0, priority: int = 0) -> UrlTask:
    return UrlTask(url=url, depth=depth, priority=priority)


def urls_of(tasks: list[UrlTask]) -> list[str]:
    return [t.url for t in tasks]


def test_pop_is_breadth_first_by_depth() -> None:
    f = Frontier()
    f.offer(task(f"{A}/d2", depth=2))
    f.offer(task(f"{A}/d0", depth=0))
    f.offer(task(f"{A}/d1", depth=1))
    assert urls_of(f.pop(A, 10)) == [f"{A}/d0", f"{A}/d1", f"{A}/d2"]


def test_pop_prefers_higher_priority_within_a_depth() -> None:
    f = Frontier()
    f.offer(task(f"{A}/low", depth=1, priority=0))
    f.offer(task(f"{A}/high", depth=1, priority=5))
    f.offer(task(f"{A}/mid", depth=1, priority=2))
    f.offer(task(f"{A}/shallow-low", depth=0, priority=-3))
    assert urls_of(f.pop(A, 10)) == [
        f"{A}/shallow-low",
        f"{A}/high",
        f"{A}/mid",
        f"{A}/low",
    ]


def test_pop_keeps_arrival_order_for_equal_depth_and_priority() -> None:
    f = Frontier()
    names = [f"{A}/p{i}" for i in (5, 3, 9, 1, 7)]
    for name in names:
        f.offer(task(name, depth=1))
    assert urls_of(f.pop(A, 10)) == names


def test_pop_returns_at_most_count() -> None:
    f = Frontier()
    for i in range(5):
        f.offer(task(f"{A}/{i}"))
    assert urls_of(f.pop(A, 2)) == [f"{A}/0", f"{A}/1"]
    assert urls_of(f.pop(A, 10)) == [f"{A}/2", f"{A}/3", f"{A}/4"]
    assert f.pop(A, 10) == []


def test_offer_returns_true_for_new_url() -> None:
    assert Frontier().offer(task(f"{A}/x"))


def test_offer_rejects_duplicate() -> None:
    f = Frontier()
    assert f.offer(task(f"{A}/x", depth=1))
    assert not f.offer(task(f"{A}/x", depth=1))
    assert not f.offer(task(f"{A}/x", depth=3))
    assert f.queued() == 1
    assert urls_of(f.pop(A, 10)) == [f"{A}/x"]


def test_offer_rejects_url_already_popped() -> None:
    f = Frontier()
    f.offer(task(f"{A}/x"))
    f.pop(A, 1)
    assert not f.offer(task(f"{A}/x"))
    assert f.queued() == 0
    assert f.pop(A, 10) == []


def test_reoffer_at_smaller_depth_moves_url_up_and_pops_once() -> None:
    f = Frontier()
    f.offer(task(f"{A}/other", depth=2))
    f.offer(task(f"{A}/x", depth=3))
    assert not f.offer(task(f"{A}/x", depth=1))
    popped = f.pop(A, 10)
    assert [(t.url, t.depth) for t in popped] == [(f"{A}/x", 1), (f"{A}/other", 2)]
    assert f.queued() == 0
    assert f.queued_at(A) == 0


def test_reoffer_at_larger_depth_keeps_smaller_depth() -> None:
    f = Frontier()
    f.offer(task(f"{A}/x", depth=1))
    assert not f.offer(task(f"{A}/x", depth=4))
    assert [(t.url, t.depth) for t in f.pop(A, 10)] == [(f"{A}/x", 1)]


def test_reoffer_at_smaller_depth_counts_once_in_queue() -> None:
    f = Frontier()
    f.offer(task(f"{A}/x", depth=4))
    f.offer(task(f"{A}/x", depth=2))
    f.offer(task(f"{A}/x", depth=1))
    assert f.queued() == 1
    assert f.queued_at(A) == 1
    assert len(f.pop(A, 10)) == 1


def test_pop_returns_only_the_given_origin() -> None:
    f = Frontier()
    f.offer(task(f"{A}/1"))
    f.offer(task(f"{B}/1"))
    f.offer(task(f"{A}/2"))
    f.offer(task(f"{A}:8443/1"))
    assert urls_of(f.pop(A, 10)) == [f"{A}/1", f"{A}/2"]
    assert urls_of(f.pop(B, 10)) == [f"{B}/1"]
    assert urls_of(f.pop(f"{A}:8443", 10)) == [f"{A}:8443/1"]


def test_pop_unknown_origin_is_empty() -> None:
    f = Frontier()
    f.offer(task(f"{A}/1"))
    assert f.pop(B, 10) == []
    assert f.queued() == 1


def test_origins_lists_shallowest_head_first() -> None:
    f = Frontier()
    f.offer(task(f"{A}/deep", depth=3))
    f.offer(task(f"{B}/shallow", depth=1))
    f.offer(task("https://c.example/mid", depth=2))
    assert f.origins() == [B, "https://c.example", A]


def test_origins_ties_broken_by_arrival() -> None:
    f = Frontier()
    f.offer(task(f"{B}/x", depth=1))
    f.offer(task(f"{A}/x", depth=1))
    assert f.origins() == [B, A]


def test_origins_follows_a_moved_up_url() -> None:
    f = Frontier()
    f.offer(task(f"{B}/x", depth=1))
    f.offer(task(f"{A}/x", depth=3))
    f.offer(task(f"{A}/x", depth=0))
    assert f.origins() == [A, B]


def test_origins_drops_emptied_origin() -> None:
    f = Frontier()
    f.offer(task(f"{A}/x"))
    f.offer(task(f"{B}/x"))
    f.pop(A, 10)
    assert f.origins() == [B]


def test_queued_and_queued_at_count_pending_urls() -> None:
    f = Frontier()
    for i in range(3):
        f.offer(task(f"{A}/{i}"))
    for i in range(2):
        f.offer(task(f"{B}/{i}"))
    assert f.queued() == 5
    assert f.queued_at(A) == 3
    assert f.queued_at(B) == 2
    assert f.queued_at("https://none.example") == 0
    f.pop(A, 2)
    assert f.queued() == 3
    assert f.queued_at(A) == 1


def test_seen_count_includes_popped_urls() -> None:
    f = Frontier()
    f.offer(task(f"{A}/1"))
    f.offer(task(f"{A}/2"))
    f.offer(task(f"{A}/1"))
    f.pop(A, 10)
    assert f.seen_count() == 2
    assert f.queued() == 0


def test_randomized_offers_pop_each_url_once_in_depth_order() -> None:
    rng = random.Random(20240611)
    origins = [f"https://h{i}.example" for i in range(5)]
    f = Frontier()
    best_depth: dict[str, int] = {}
    popped: list[UrlTask] = []
    popped_urls: set[str] = set()
    popped_by_origin: dict[str, list[int]] = {o: [] for o in origins}
    for step in range(2000):
        o = rng.choice(origins)
        url = f"{o}/p{rng.randrange(120)}"
        depth = rng.randrange(6)
        added = f.offer(task(url, depth=depth, priority=rng.randrange(-2, 3)))
        assert added == (url not in best_depth)
        if url not in popped_urls:
            best_depth[url] = min(depth, best_depth.get(url, depth))
        if step % 50 == 49:
            # Pops interleave with offers; a later offer may be shallower than earlier pops,
            # so order is checked within each pop call, not across calls.
            o = rng.choice(origins)
            batch = f.pop(o, rng.randrange(1, 15))
            assert all(t.url.startswith(o + "/") for t in batch)
            depths = [t.depth for t in batch]
            assert depths == sorted(depths)
            popped.extend(batch)
            popped_urls.update(t.url for t in batch)
            popped_by_origin[o].extend(depths)
    for o in f.origins():
        batch = f.pop(o, 10_000)
        assert all(t.url.startswith(o + "/") for t in batch)
        assert [t.depth for t in batch] == sorted(t.depth for t in batch)
        popped.extend(batch)
    assert f.queued() == 0
    assert f.origins() == []
    all_urls = [t.url for t in popped]
    assert len(all_urls) == len(set(all_urls))
    assert set(all_urls) == set(best_depth)
    for t in popped:
        assert t.depth == best_depth[t.url]


def test_randomized_offers_then_pops_come_out_in_nondecreasing_depth_per_origin() -> None:
    rng = random.Random(7)
    origins = [f"https://h{i}.example" for i in range(5)]
    f = Frontier()
    best_depth: dict[str, int] = {}
    for _ in range(2000):
        o = rng.choice(origins)
        url = f"{o}/p{rng.randrange(150)}"
        depth = rng.randrange(8)
        f.offer(task(url, depth=depth))
        best_depth[url] = min(depth, best_depth.get(url, depth))
    assert f.queued() == len(best_depth)
    seen: list[str] = []
    for o in origins:
        depths: list[int] = []
        while batch := f.pop(o, rng.randrange(1, 20)):
            for t in batch:
                assert t.url.startswith(o + "/")
                assert t.depth == best_depth[t.url]
            depths.extend(t.depth for t in batch)
            seen.extend(t.url for t in batch)
        assert depths == sorted(depths)
    assert sorted(seen) == sorted(best_depth)
    assert len(seen) == len(set(seen))
    assert f.queued() == 0


def test_recent_set_remembers_until_full_then_forgets_everything():
    recent = RecentSet(capacity=3)
    assert recent.add(UrlTask(url="http://a/1", depth=2)) and not recent.add(
        UrlTask(url="http://a/1", depth=2)
    )
    assert recent.add(UrlTask(url="http://a/2", depth=2)) and recent.add(
        UrlTask(url="http://a/3", depth=2)
    )
    assert len(recent) == 3
    assert recent.add(UrlTask(url="http://a/4", depth=2)), "a full set starts over"
    assert len(recent) == 1 and recent.add(UrlTask(url="http://a/1", depth=2))
    with pytest.raises(ValueError, match="capacity"):
        RecentSet(capacity=0)


def test_recent_set_takes_a_url_again_at_a_smaller_depth_only():
    recent = RecentSet(capacity=10)
    assert recent.add(UrlTask(url="http://a/1", depth=5))
    assert not recent.add(UrlTask(url="http://a/1", depth=6))
    assert recent.add(UrlTask(url="http://a/1", depth=2)), "a shallower path must reach the owner"
    assert not recent.add(UrlTask(url="http://a/1", depth=2))


def test_queued_at_counts_stay_exact_through_offers_depth_moves_and_pops():
    rng = random.Random(7)
    frontier = Frontier()
    origins = [f"http://h{i}.example" for i in range(4)]
    seen: set[str] = set()
    queued: dict[str, set[str]] = {o: set() for o in origins}
    for _ in range(3000):
        origin = rng.choice(origins)
        if rng.random() < 0.7:
            url = f"{origin}/p/{rng.randrange(300)}"
            frontier.offer(UrlTask(url=url, depth=rng.randrange(6)))
            if url not in seen:
                seen.add(url)
                queued[origin].add(url)
        else:
            for task in frontier.pop(origin, rng.randrange(1, 6)):
                queued[origin].remove(task.url)
        assert [frontier.queued_at(o) for o in origins] == [len(queued[o]) for o in origins]
    assert sum(len(q) for q in queued.values()) == frontier.queued()


def test_requests_dedup_by_url_method_and_body_not_by_callback():
    f = Frontier()
    url = "http://a.example/search"
    assert f.offer(UrlTask(url=url))
    assert not f.offer(UrlTask(url=url, request=RequestData(callback="parse_other")))
    post = RequestData(method="POST", body_b64="cT0x", callback="parse_results")
    assert f.offer(UrlTask(url=url, request=post)), "a POST is another request than the GET"
    assert not f.offer(UrlTask(url=url, request=post))
    other_body = post.model_copy(update={"body_b64": "cT0y"})
    assert f.offer(UrlTask(url=url, request=other_body))
    assert f.queued() == 3


def test_dont_filter_requests_are_queued_every_time_and_survive_a_checkpoint():
    f = Frontier()
    again = RequestData(callback="parse_stock", dont_filter=True, cb_kwargs={"again": True})
    url = "http://a.example/stock/1"
    assert f.offer(UrlTask(url=url))
    assert f.offer(UrlTask(url=url, request=again))
    assert f.offer(UrlTask(url=url, request=again))
    restored = Frontier()
    restored.restore_seen(f.seen_bytes())
    restored.restore_queued(f.export())
    popped = restored.pop("http://a.example", 10)
    assert [t.request for t in popped] == [None, again, again]
    assert not restored.offer(UrlTask(url=url)), "the seen-set came through the checkpoint"


def test_a_dont_filter_request_leaves_no_mark_in_the_seen_set():
    """Scrapy's scheduler does not record a dont_filter request: the same URL asked for later
    without dont_filter still goes."""
    f = Frontier()
    url = "http://a.example/stock/2"
    assert f.offer(UrlTask(url=url, request=RequestData(dont_filter=True)))
    assert f.seen_count() == 0
    assert f.offer(UrlTask(url=url)), "the filtered request was taken for a duplicate"
    assert not f.offer(UrlTask(url=url))
