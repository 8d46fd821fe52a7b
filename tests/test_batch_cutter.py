"""BatchCutter: many hosts' slices into few batches, a slice never split."""

from __future__ import annotations

from shardcrawl.models import UrlTask
from shardcrawl.policy.batch_cutter import BatchCutter, HostSlice
from shardcrawl.policy.politeness import Allotment


def part(host: str, n: int) -> HostSlice:
    tasks = [UrlTask(url=f"http://{host}/{i}") for i in range(n)]
    return HostSlice(f"http://{host}", Allotment(host=host, slots=2, delay_seconds=0), [], tasks)


def hosts(batch: list[HostSlice] | None) -> list[str]:
    assert batch is not None
    return [p.allotment.host for p in batch]


def test_small_hosts_share_a_batch_up_to_the_size() -> None:
    cutter = BatchCutter(max_requests=10, max_url_bytes=10_000)
    assert cutter.add(part("a", 3), 0.0) is None
    assert cutter.add(part("b", 3), 0.0) is None
    assert cutter.add(part("c", 4), 0.0) is None
    closed = cutter.add(part("d", 1), 0.0)  # 11 > 10: the open batch goes first, whole
    assert hosts(closed) == ["a", "b", "c"]
    assert hosts(cutter.close()) == ["d"]
    assert cutter.close() is None


def test_a_host_that_fills_a_batch_has_it_alone() -> None:
    cutter = BatchCutter(max_requests=10, max_url_bytes=10_000)
    cutter.add(part("a", 2), 0.0)
    assert hosts(cutter.add(part("big", 10), 0.0)) == ["a"]
    assert hosts(cutter.add(part("c", 1), 0.0)) == ["big"]
    assert hosts(cutter.close()) == ["c"]


def test_url_bytes_bound_a_batch_too() -> None:
    one = part("a", 5)
    cutter = BatchCutter(max_requests=100, max_url_bytes=one.url_bytes() + 5)
    cutter.add(one, 0.0)
    assert hosts(cutter.add(part("b", 1), 0.0)) == ["a"]


def test_the_open_batch_knows_since_when_it_waits() -> None:
    cutter = BatchCutter(max_requests=10, max_url_bytes=10_000)
    cutter.add(part("a", 6), 5.0)
    cutter.add(part("b", 2), 7.0)
    assert (cutter.opened_at, cutter.requests) == (5.0, 8)
    assert hosts(cutter.add(part("c", 4), 9.0)) == ["a", "b"]  # c opens the next batch
    assert (cutter.opened_at, cutter.requests) == (9.0, 4)
