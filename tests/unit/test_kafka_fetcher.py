"""The process's shared consumer of the read (transforms.kafka_fetcher), on a fake consumer."""

from __future__ import annotations

from types import SimpleNamespace

from kafka import TopicPartition

from transforms import kafka_fetcher
from transforms.kafka_fetcher import SharedFetcher

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
        self.closed = False

    def assign(self, partitions):
        self.assigned = list(partitions)

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))

    def pause(self, *tps):
        self.paused |= set(tps)

    def resume(self, *tps):
        self.paused -= set(tps)

    def poll(self, timeout_ms):
        self.waits.append(timeout_ms)
        return self.polls.pop(0) if self.polls else {}

    def close(self):
        self.closed = True


def test_a_poll_keeps_other_partitions_records_for_their_call_which_does_not_wait():
    consumer = FakeConsumer({}, {P1: [record(P1, 7), record(P1, 8)]})
    fetcher = SharedFetcher(lambda: consumer)
    fetcher.fetch(P1, 7, wait_ms=0)

    assert fetcher.fetch(P0, 0, wait_ms=100) == []
    assert [r.offset for r in fetcher.fetch(P1, 7, wait_ms=100)] == [7, 8]
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

    assert fetcher.fetch(P1, 2, wait_ms=0) == []  # say, a bundle retried from 2
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
