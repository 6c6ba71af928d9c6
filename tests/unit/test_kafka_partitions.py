"""The partition watcher (transforms.kafka.partitions): its pure logic, and its calls on a fake
metadata client (the broker's part is tests/integration/test_partitions_added.py)."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Optional

import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration, Timestamp
from kafka.errors import NoBrokersAvailable

from transforms.kafka import partitions as kafka_partitions
from transforms.kafka.partitions import (
    AHEAD_OF_WALL_CLOCK,
    ListingSchedule,
    PartitionToRead,
    _AheadOfWallClock,
    _WatchPartitionsFn,
    ahead_of_wall_clock,
    readable_count,
    start_policy,
)
from transforms.kafka.restrictions import UnboundedRangeTracker


def described(count: int, leaderless: tuple[int, ...] = (), error_code: int = 0) -> dict:
    partitions = [
        {'partition': n, 'leader': -1 if n in leaderless else 1} for n in reversed(range(count))
    ]
    return {'topic': 'focus', 'error_code': error_code, 'partitions': partitions}


def test_partitions_there_at_build_start_as_configured_later_ones_from_their_first_offset():
    assert [start_policy(n, 3, 'latest') for n in range(5)] == ['latest'] * 3 + ['earliest'] * 2
    assert start_policy(0, 3, 'earliest') == 'earliest'


def test_the_readable_count_stops_at_the_first_partition_without_a_leader():
    assert readable_count(described(5)) == 5
    assert readable_count(described(5, leaderless=(3,))) == 3
    assert readable_count(described(0)) == 0


def test_a_topic_error_is_a_failed_listing():
    with pytest.raises(LookupError, match='error code 3'):
        readable_count(described(0, error_code=3))


def test_a_topic_is_due_at_once_then_every_interval():
    now = [100.0]
    schedule = ListingSchedule(30, clock=lambda: now[0])

    assert schedule.wait_s('focus') == 0
    schedule.listed('focus')
    now[0] += 12
    assert schedule.wait_s('focus') == 18
    assert schedule.wait_s('entry') == 0
    now[0] += 18
    assert schedule.wait_s('focus') == 0


def test_the_restriction_splits_only_to_checkpoint():
    tracker = UnboundedRangeTracker(OffsetRange(3, sys.maxsize))

    assert tracker.try_split(0.5) is None
    assert not tracker.is_bounded()
    assert tracker.try_split(0) == (OffsetRange(3, 3), OffsetRange(3, sys.maxsize))


def test_the_watermark_runs_ahead_of_the_wall_clock_below_the_global_window_end():
    state = _AheadOfWallClock().initial_estimator_state(('focus', 3), OffsetRange(0, 1))

    assert state - Timestamp.now() > Duration(seconds=999 * 365 * 24 * 3600)
    assert state + AHEAD_OF_WALL_CLOCK < GlobalWindow().max_timestamp()


class FakeAdmin:
    """Answers describe_topics with the topic's current partition count, or an error."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts
        self.down = False
        self.requests = 0
        self.closed = False

    def describe_topics(self, topics):
        self.requests += 1
        if self.down:
            raise NoBrokersAvailable()
        return [{**described(self.counts[topic]), 'topic': topic} for topic in topics]

    def close(self):
        self.closed = True


class Watcher:
    """The watcher DoFn on a fake admin and a fake clock; one call at a time, as a runner would
    make them, each from the restriction the previous call left."""

    def __init__(self, monkeypatch, admin: FakeAdmin, reset: str = 'latest'):
        self.now = [0.0]
        self.sleeps: list[float] = []
        monkeypatch.setattr(kafka_partitions.time, 'monotonic', lambda: self.now[0])
        monkeypatch.setattr(kafka_partitions.time, 'sleep', self._sleep)
        self.admin = admin
        connection = SimpleNamespace(auto_offset_reset=reset, admin=lambda role, wait_ms: admin)
        self.fn = _WatchPartitionsFn(connection, 30.0)
        self.fn.setup()
        self.restriction: Optional[OffsetRange] = OffsetRange(0, sys.maxsize)
        self.watermark = ManualWatermarkEstimator(ahead_of_wall_clock())

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now[0] += seconds

    def call(self, topic: tuple[str, int]) -> list[PartitionToRead]:
        tracker = ThreadsafeRestrictionTracker(UnboundedRangeTracker(self.restriction))
        before = self.watermark.current_watermark()
        outputs = list(self.fn.process(topic, RestrictionTrackerView(tracker), self.watermark))
        assert self.watermark.current_watermark() > before  # moves at every call
        assert all(out.timestamp == MIN_TIMESTAMP for out in outputs)
        residual, delay = tracker.deferred_status()
        assert delay <= Duration(seconds=30)
        self.restriction = residual
        return [out.value for out in outputs]


def test_the_first_call_hands_on_the_partitions_there_at_build_as_configured(monkeypatch):
    watcher = Watcher(monkeypatch, FakeAdmin({'focus': 3}))

    assert watcher.call(('focus', 3)) == [PartitionToRead('focus', n, 'latest') for n in range(3)]
    assert watcher.restriction == OffsetRange(3, sys.maxsize)


def test_partitions_added_later_are_handed_on_once_from_their_first_offset(monkeypatch):
    admin = FakeAdmin({'focus': 3})
    watcher = Watcher(monkeypatch, admin)
    watcher.call(('focus', 3))
    admin.counts['focus'] = 5

    found = []
    while watcher.now[0] < 31:
        found += watcher.call(('focus', 3))

    assert found == [
        PartitionToRead('focus', 3, 'earliest'),
        PartitionToRead('focus', 4, 'earliest'),
    ]
    assert admin.requests == 2  # once at the start, once 30 s later
    assert watcher.restriction == OffsetRange(5, sys.maxsize)


def test_a_partition_added_between_build_and_first_listing_starts_from_its_first_offset(
    monkeypatch,
):
    watcher = Watcher(monkeypatch, FakeAdmin({'focus': 4}))

    assert [p.reset for p in watcher.call(('focus', 3))] == ['latest'] * 3 + ['earliest']


def test_a_call_before_it_is_due_sleeps_at_most_a_second_and_lists_nothing(monkeypatch):
    admin = FakeAdmin({'focus': 3})
    watcher = Watcher(monkeypatch, admin)
    watcher.call(('focus', 3))

    assert watcher.call(('focus', 3)) == []
    assert watcher.sleeps == [1.0]
    assert admin.requests == 1


def test_a_failed_listing_is_retried_when_due_with_a_new_client(monkeypatch):
    admin = FakeAdmin({'focus': 3})
    watcher = Watcher(monkeypatch, admin)
    admin.down = True

    assert watcher.call(('focus', 3)) == []
    assert admin.closed and watcher.restriction == OffsetRange(0, sys.maxsize)
    admin.down = False
    watcher.now[0] += 30
    assert len(watcher.call(('focus', 3))) == 3
