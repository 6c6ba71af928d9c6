"""The ended ledger (transforms.kafka.ledger) against the real broker: the ledger group's
commits are what decides, after a restore, which focus events are not scored again.

The Flink tests show the whole of it (tests/flink/test_recovery.py); these check its parts
where a failure is easy to read: where ``align_ledger`` starts the ledger, what
``SkipEndedRecords`` skips in a pipeline, and that its view is read again when the read goes
back (a restore in the same worker).
"""

from __future__ import annotations

import uuid

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from standins.kafka.broker import KafkaBroker, create_topics
from transforms.domain import EndedOffsets, KafkaRecord
from transforms.kafka.connection import KafkaConnection
from transforms.kafka.ledger import SkipEndedRecords, _SkipEndedFn, align_ledger, ledger_connection

pytestmark = pytest.mark.integration


@pytest.fixture
def store(kafka: KafkaBroker) -> tuple[KafkaConnection, str, str]:
    """A connection with a group of its own, and an entry and a focus topic of 2 partitions."""
    run = uuid.uuid4().hex[:8]
    entry, focus = f'it.{run}.entry', f'it.{run}.focus'
    create_topics(kafka.bootstrap_servers, [entry, focus], partitions=2)
    connection = KafkaConnection(
        client_config=(('bootstrap_servers', kafka.bootstrap_servers),),
        client_id='it-ledger',
        group_id=f'it-ledger-{run}',
    )
    return connection, entry, focus


def commit(connection: KafkaConnection, marks: dict[TopicPartition, tuple[int, str]]) -> None:
    consumer = connection.consumer('it-commit')
    try:
        consumer.commit({tp: OffsetAndMetadata(o, m, -1) for tp, (o, m) in marks.items()})
    finally:
        consumer.close()


def committed(connection: KafkaConnection, tp: TopicPartition) -> int | None:
    consumer = connection.consumer('it-committed')
    try:
        return consumer.committed(tp)
    finally:
        consumer.close()


def record(topic: str, offset: int, partition: int = 0) -> KafkaRecord:
    return KafkaRecord(topic, partition, offset, b'c1', b'{}', 1_700_000_000_000)


def test_the_ledger_starts_at_the_group_offset_and_never_goes_back(store):
    connection, entry, focus = store
    p0, p1, p2 = TopicPartition(focus, 0), TopicPartition(focus, 1), TopicPartition(entry, 0)
    ledger = ledger_connection(connection)
    commit(connection, {p0: (5, ''), p1: (3, '')})
    commit(ledger, {p1: (7, 'ended-ahead:9-10')})

    align_ledger(connection, [p0, p1, p2])

    assert committed(ledger, p0) == 5  # had none: the group's
    assert committed(ledger, p1) == 7  # ahead of the group: kept
    assert committed(ledger, p2) is None  # the group has none either: the frontier's first mark


def test_focus_events_the_ledger_holds_are_skipped_as_gaps_and_entries_are_not(store):
    connection, entry, focus = store
    commit(ledger_connection(connection), {TopicPartition(focus, 0): (3, 'ended-ahead:5-7')})
    read = [record(focus, o) for o in range(9)] + [record(entry, o) for o in range(4)]

    with test_pipeline.TestPipeline() as p:
        out = p | beam.Create(read) | SkipEndedRecords(connection, [entry, focus], [focus])
        assert_that(
            out['records'] | 'RecordOffsets' >> beam.Map(lambda r: (r.topic, r.offset)),
            equal_to([(focus, o) for o in (3, 4, 7, 8)] + [(entry, o) for o in range(4)]),
            label='records',
        )
        assert_that(
            out['gaps'],
            equal_to([EndedOffsets(focus, 0, o, o + 1) for o in (0, 1, 2, 5, 6)]),
            label='gaps',
        )


def test_a_read_that_goes_back_reads_the_ledger_again(store):
    connection, _, focus = store
    tp = TopicPartition(focus, 0)
    skip = _SkipEndedFn(connection, frozenset([focus]))
    skip.setup()
    try:
        first = [list(skip.process(record(focus, o))) for o in range(4)]
        commit(ledger_connection(connection), {tp: (3, '')})  # 0-2 published since
        unchanged = list(skip.process(record(focus, 4)))
        after_restore = [list(skip.process(record(focus, o))) for o in range(4)]
    finally:
        skip.teardown()

    assert all(out == [record(focus, o)] for o, out in enumerate(first))
    assert unchanged == [record(focus, 4)]  # read on: the view is not asked again
    assert [type(out[0]).__name__ for out in after_restore] == [
        'TaggedOutput',
        'TaggedOutput',
        'TaggedOutput',
        'KafkaRecord',
    ]
