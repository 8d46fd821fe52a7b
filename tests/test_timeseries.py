"""The shards' time series: bounded buckets that coarsen, survive a checkpoint, and merge
across shards without losing a count; the last minute's rate for status."""

from __future__ import annotations

from shardcrawl.models import FetchOutcome, ShardResult, wire_json
from shardcrawl.models.timeseries import (
    MAX_BUCKETS,
    SeriesRecorder,
    TimeSeries,
    merge_series,
    note_recent,
)
from shardcrawl.policy.shard_stats import ShardStats

T0 = 1_800_000_000.0  # on the 10 s grid


def test_buckets_are_10_s_for_the_first_hour_then_coarsen_within_the_bound() -> None:
    recorder = SeriesRecorder()
    for second in range(0, 3600, 5):
        recorder.add(T0 + second, pages=1)
    hour = recorder.export()
    assert (hour.bucket_seconds, hour.count) == (10, 360)
    assert hour.column("pages") == [2] * 360
    for second in range(3600, 6 * 3600, 5):
        recorder.add(T0 + second, pages=1)
    day = recorder.export()
    assert day.count <= MAX_BUCKETS and day.bucket_seconds == 80
    assert sum(day.column("pages")) == 6 * 3600 // 5  # nothing lost by coarsening


def test_gauges_keep_the_largest_value_and_shards_add_up() -> None:
    one, two = SeriesRecorder(), SeriesRecorder()
    for second, depth in ((0, 5), (3, 9), (12, 4)):
        one.gauge(T0 + second, "queued", depth)
    two.gauge(T0 + 1, "queued", 100)
    assert one.export().column("queued") == [9, 4]
    assert merge_series([one.export(), two.export()]).column("queued") == [109, 4]


def test_series_of_different_widths_merge_on_the_wider_grid() -> None:
    fine, coarse = SeriesRecorder(), SeriesRecorder(max_buckets=4)
    for second in range(0, 80, 10):
        fine.add(T0 + second, requests=1)
        coarse.add(T0 + second, requests=2)
    assert coarse.export().bucket_seconds == 20
    merged = merge_series([fine.export(), coarse.export()])
    assert merged.bucket_seconds == 20 and merged.column("requests") == [6, 6, 6, 6]


def test_stats_date_outcomes_by_their_batch_and_carry_the_series_in_a_checkpoint() -> None:
    stats = ShardStats()
    stats.record_batch(attempt=1, origins=["http://a.example"], now=T0, queued=7)
    stats.record_outcome(FetchOutcome(url="http://a.example/", status=200))
    stats.record_outcome(FetchOutcome(url="http://a.example/x", status=503), final=False)
    stats.record_batch(attempt=1, origins=["http://a.example"], now=T0 + 25, queued=2)
    stats.record_outcome(FetchOutcome(url="http://a.example/x", status=200, attempt=2))
    stats.record_outcome(FetchOutcome(url="http://a.example/y", status=403, blocked="status"))
    series = stats.series
    assert series.column("requests") == [2, 0, 2]
    assert series.column("pages") == [1, 0, 2]
    assert series.column("status_5xx") == [1, 0, 0] and series.column("status_4xx") == [0, 0, 1]
    assert series.column("retries") == [0, 0, 1] and series.column("blocked") == [0, 0, 1]
    assert series.column("queued") == [7, 0, 2]
    later = ShardStats()
    later.restore(stats.totals, {}, series=TimeSeries.model_validate_json(series.model_dump_json()))
    later.record_batch(attempt=1, origins=["http://a.example"], now=T0 + 25, queued=0)
    later.record_outcome(FetchOutcome(url="http://a.example/z", status=200))
    assert later.series.column("pages") == [1, 0, 3]


def test_a_full_series_stays_a_small_payload() -> None:
    recorder = SeriesRecorder()
    for second in range(0, 3600, 10):
        recorder.add(T0 + second, requests=999, pages=999, failures=99, status_2xx=999)
        recorder.gauge(T0 + second, "queued", 99_999)
    result = ShardResult(shard=0, totals=ShardStats().totals, hosts_segments=[])
    result.series = recorder.export()
    assert len(wire_json(result)) < 20_000


def test_recent_pages_keep_the_last_minute_only() -> None:
    recent: dict[str, int] = {}
    for second in range(0, 600, 2):
        note_recent(recent, T0 + second, 1)
    assert len(recent) <= 7 and sum(recent.values()) <= 35
