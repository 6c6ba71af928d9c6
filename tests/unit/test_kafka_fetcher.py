"""The process's shared consumer of the read (transforms.kafka.fetcher), on a fake consumer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from kafka.errors import CorruptRecordError, TopicAuthorizationFailedError, UnsupportedCodecError

from transforms.domain import UndecodableBatch
from transforms.kafka import fetcher as kafka_fetcher
from transforms.kafka.fetcher import SharedFetcher

P0, P1 = TopicPartition('focus', 0), TopicPartition('focus', 1)


def record(tp: TopicPartition, offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=offset)


class FakeConsumer:
    """Answers each poll with the next of ``polls``; records what it was told."""

    def __init__(self, *polls: dict):
        self.polls = list(polls)
        self.waits: list[int] = []
        self.assigned: list[TopicPartition] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.closed = False

    def assign(self, partitions):
        self.assigned = list(partitions)

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))
        self.positions[tp] = offset

    def position(self, tp, timeout_ms=None):
        return self.positions.get(tp)

    def pause(self, *tps):
        self.paused |= set(tps)

    def resume(self, *tps):
        self.paused -= set(tps)

    def poll(self, timeout_ms):
        self.waits.append(timeout_ms)
        answer = self.polls.pop(0) if self.polls else {}
        for tp, records in answer.items():
            self.positions[tp] = records[-1].offset + 1
        return answer

    def close(self):
        self.closed = True


def test_a_poll_keeps_other_partitions_records_for_their_call_which_does_not_wait():
    consumer = FakeConsumer({}, {P1: [record(P1, 7), record(P1, 8)]})
    fetcher = SharedFetcher(lambda: consumer)
    fetcher.fetch(P1, 7, wait_ms=0)

    assert fetcher.fetch(P0, 0, wait_ms=100).records == []
    assert [r.offset for r in fetcher.fetch(P1, 7, wait_ms=100).records] == [7, 8]
    assert consumer.waits == [0, 100]  # P1's second call found its records: no poll


def test_no_call_waits_while_records_of_another_partition_wait():
    consumer = FakeConsumer({}, {P1: [record(P1, 7)]}, {})
    fetcher = SharedFetcher(lambda: consumer)
    fetcher.fetch(P1, 7, wait_ms=0)
    fetcher.fetch(P0, 0, wait_ms=100)

    fetcher.fetch(P0, 0, wait_ms=100)

    assert consumer.waits == [0, 100, 0]
    assert consumer.paused == {P1}  # not fetched again before its records are taken


def test_every_partition_asked_for_is_assigned_and_positioned_once():
    consumer = FakeConsumer({P0: [record(P0, 3)]}, {}, {})
    fetcher = SharedFetcher(lambda: consumer)

    fetcher.fetch(P0, 3, wait_ms=0)
    fetcher.fetch(P1, 10, wait_ms=0)
    fetcher.fetch(P0, 4, wait_ms=0)  # where the last records ended: no seek

    assert consumer.assigned == [P0, P1]
    assert consumer.seeks == [(P0, 3), (P1, 10)]


def test_asking_for_another_offset_seeks_and_drops_what_waited():
    consumer = FakeConsumer({}, {P1: [record(P1, 4)]}, {})
    fetcher = SharedFetcher(lambda: consumer)
    fetcher.fetch(P1, 4, wait_ms=0)
    fetcher.fetch(P0, 0, wait_ms=0)  # P1's record 4 waits

    assert fetcher.fetch(P1, 2, wait_ms=0).records == []  # say, a bundle retried from 2
    assert consumer.seeks[-1] == (P1, 2)


def test_the_last_user_closes_the_consumer():
    consumer = FakeConsumer()
    first = kafka_fetcher.acquire('run-1', lambda: consumer)
    second = kafka_fetcher.acquire('run-1', lambda: FakeConsumer())
    first.fetch(P0, 0, wait_ms=0)

    kafka_fetcher.release('run-1')
    assert second is first and not consumer.closed
    kafka_fetcher.release('run-1')
    assert consumer.closed


def test_the_next_call_starts_past_offsets_the_consumer_skipped_without_a_record():
    """Transaction markers and aborted records (read_committed) are offsets that hand out no
    record: the consumer's position moves past them, and so does the partition's next call."""
    consumer = FakeConsumer({P0: [record(P0, 5)]})
    fetcher = SharedFetcher(lambda: consumer)
    fetched = fetcher.fetch(P0, 5, wait_ms=0)
    consumer.positions[P0] = 7  # offset 6: the commit marker after record 5
    assert fetched.next_offset == 6
    assert fetcher.fetch(P0, 6, wait_ms=0).next_offset == 7


class LogConsumer(FakeConsumer):
    """A consumer of a simulated log: every offset below ``end`` holds a record, except the
    ``bad`` batches, which fail to decode wherever a fetch starts in them (as kafka-python
    does); a fetch returns the records before the first bad batch, then fails."""

    def __init__(self, log: 'Log'):
        super().__init__()
        self.log = log

    def end_offsets(self, tps):
        return {tp: self.log.end for tp in tps}

    def poll(self, timeout_ms):
        fetched = {}
        for tp, position in self.positions.items():
            if tp in self.paused or position >= self.log.end:
                continue
            stop = min(
                [start for start, _ in self.log.bad.get(tp, ()) if start >= position]
                or [self.log.end]
            )
            if any(start <= position < end for start, end in self.log.bad.get(tp, ())):
                raise self.log.error
            if stop > position:
                fetched[tp] = [record(tp, offset) for offset in range(position, stop)]
                self.positions[tp] = stop
        return fetched


class Log:
    def __init__(self, end: int, bad: dict, error: Exception = None):
        self.end = end
        self.bad = bad
        self.error = error or CorruptRecordError('Record batch failed crc check')


def test_a_batch_that_cannot_be_decoded_is_handed_out_as_its_range_and_the_read_goes_on():
    log = Log(end=20, bad={P1: [(10, 14)]})
    fetcher = SharedFetcher(lambda: LogConsumer(log))
    assert [r.offset for r in fetcher.fetch(P0, 0, wait_ms=0).records] == list(range(20))
    assert [r.offset for r in fetcher.fetch(P1, 8, wait_ms=0).records] == [8, 9]

    fetched = fetcher.fetch(P1, 10, wait_ms=0)

    assert fetched.undecodable == UndecodableBatch(
        'focus', 1, 10, 14, '[Error 2] CorruptRecordError: Record batch failed crc check'
    )
    assert fetched.records == [] and fetched.next_offset == 14
    assert [r.offset for r in fetcher.fetch(P1, 14, wait_ms=0).records] == list(range(14, 20))


def test_a_bad_batch_at_the_end_of_the_log_ends_at_the_log_end():
    log = Log(end=12, bad={P0: [(10, 12)]}, error=UnsupportedCodecError('snappy'))
    fetcher = SharedFetcher(lambda: LogConsumer(log))

    fetched = fetcher.fetch(P0, 10, wait_ms=0)

    assert (fetched.undecodable.start, fetched.undecodable.end) == (10, 12)
    assert fetched.next_offset == 12


def test_the_other_partitions_go_on_from_where_they_were():
    log = Log(end=6, bad={P1: [(0, 3)]})
    fetcher = SharedFetcher(lambda: LogConsumer(log))
    fetcher.fetch(P0, 2, wait_ms=0)  # P0 fetched up to 6: records 2..5 wait for nobody

    assert fetcher.fetch(P1, 0, wait_ms=0).undecodable.end == 3
    assert fetcher.fetch(P0, 6, wait_ms=0).next_offset == 6


def test_a_failure_that_is_not_about_decoding_fails_the_call():
    log = Log(end=5, bad={P0: [(0, 5)]}, error=TopicAuthorizationFailedError())
    fetcher = SharedFetcher(lambda: LogConsumer(log))
    with pytest.raises(TopicAuthorizationFailedError):
        fetcher.fetch(P0, 0, wait_ms=0)


def test_a_failure_that_does_not_happen_again_skips_nothing():
    log = Log(end=5, bad={})
    glitches = [ValueError('a glitch')]

    class GlitchOnce(LogConsumer):
        def poll(self, timeout_ms):
            if glitches:
                raise glitches.pop()
            return super().poll(timeout_ms)

    fetcher = SharedFetcher(lambda: GlitchOnce(log))

    assert fetcher.fetch(P0, 0, wait_ms=0).undecodable is None
    assert [r.offset for r in fetcher.fetch(P0, 0, wait_ms=0).records] == list(range(5))
