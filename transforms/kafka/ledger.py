"""The ended ledger: which records the pipeline finished, kept outside Flink's checkpoints, so
that a restore from a checkpoint does not publish a focus event's predictions twice
(``ENDED_LEDGER=on``; off by default, for its cost: docs/runners.md).

With KafkaIO's read as a native Flink source, a partition's offset lives in Flink's
checkpoints, and a restore (a TaskManager lost, a job restarted by its restart strategy)
reads again from the last completed one: without the ledger, every focus event read after
that checkpoint and published before the failure (up to ``FLINK_CHECKPOINT_INTERVAL_MS`` of
input) is scored and published again. The ledger is a consumer group of its own,
``<GROUP_ID>.ended`` (``ledger_connection``): ``CommitEndedOffsets(keyed=True)`` commits to it,
as the broker acknowledges the writes, the offset below which every record has ended and, in
the commit's metadata, the ranges ended beyond it (transforms.kafka.commit_metadata).
KafkaIO keeps committing the group itself, at completed checkpoints.

``SkipEndedRecords``
  In:  PCollection[KafkaRecord] as read.
  Out: ``records``: the same, less the records of ``topics`` that the ledger says have ended;
       ``gaps``: PCollection[EndedOffsets], one per record skipped, so that its partition's
       frontier moves over it.
  State: per DoFn instance and partition, the ledger's view (read at the partition's first
  record, and again whenever its offsets go back: that is a restore) and the highest offset
  seen. Skipped records count in ``offsets.skipped_ended_before_restart``.

Only focus events are skipped: an entry event's outcome is the context stored in the
customer's session, which lives in Flink's state, and a restore takes that state back to the
checkpoint; the entry must be processed again to store its context again. A focus event's
outcome is its published predictions (or dead letter), which a restore does not take back.

Only with a writer that ends a record once the broker acknowledged it (the Python writer):
KafkaIO's writer ends it once handed over, and a ledger fed by it would skip, after a crash,
writes that were never flushed.

``align_ledger`` runs when the pipeline is built: a ledger partition without an offset, or
behind the group's (an operator moved the group on), starts at the group's. To process
records again on purpose, reset ``<GROUP_ID>.ended`` with the group (docs/operations.md).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from transforms.domain import EndedOffsets, KafkaRecord
from transforms.kafka.commit_metadata import ended_ahead_ranges
from transforms.kafka.connection import KafkaConnection, list_partitions

RECORDS = 'records'
GAPS = 'gaps'
LEDGER_SUFFIX = '.ended'


def ledger_connection(connection: KafkaConnection) -> KafkaConnection:
    """``connection`` with the ledger's group, ``<GROUP_ID>.ended``."""
    return dataclasses.replace(connection, group_id=f'{connection.group_id}{LEDGER_SUFFIX}')


@dataclasses.dataclass(frozen=True)
class LedgerView:
    """What the ledger says of one partition: every offset below ``next_offset`` ended, and
    the ``ranges`` [start, end) beyond it."""

    next_offset: int
    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, committed: Optional[OffsetAndMetadata]) -> LedgerView:
        if committed is None:
            return cls(0)  # nothing recorded: nothing skipped
        return cls(committed.offset, tuple(ended_ahead_ranges(committed.metadata)))

    def ended(self, offset: int) -> bool:
        return offset < self.next_offset or any(s <= offset < e for s, e in self.ranges)


def align_ledger(connection: KafkaConnection, partitions: list[TopicPartition]) -> None:
    """Moves each ledger partition that has no offset, or one behind the group's, to the
    group's committed offset: what KafkaIO starts from, where the ledger's frontier waits."""
    group = connection.consumer('ledger-align')
    ledger = ledger_connection(connection).consumer('ledger-align')
    try:
        behind = {}
        for tp in partitions:
            started = group.committed(tp)
            recorded = ledger.committed(tp)
            if started is not None and (recorded is None or recorded < started):
                behind[tp] = OffsetAndMetadata(started, '', -1)
        if behind:
            ledger.commit(behind)
    finally:
        group.close()
        ledger.close()


class _SkipEndedFn(beam.DoFn):
    def __init__(self, connection: KafkaConnection, topics: frozenset[str]):
        self._connection = connection
        self._topics = topics
        self._skipped = Metrics.counter('offsets', 'skipped_ended_before_restart')

    def setup(self) -> None:
        self._ledger: KafkaConsumer = ledger_connection(self._connection).consumer('ledger')
        self._views: dict[TopicPartition, LedgerView] = {}
        self._highest: dict[TopicPartition, int] = {}

    def process(
        self, record: KafkaRecord
    ) -> Iterator[Union[KafkaRecord, beam.pvalue.TaggedOutput]]:
        if record.topic not in self._topics:
            yield record
            return
        if self._view(record).ended(record.offset):
            self._skipped.inc()
            yield beam.pvalue.TaggedOutput(GAPS, EndedOffsets.of(record.position))
        else:
            yield record

    def _view(self, record: KafkaRecord) -> LedgerView:
        """The ledger's view of the record's partition, read again when the read went back."""
        tp = TopicPartition(record.topic, record.partition)
        if tp not in self._views or record.offset <= self._highest[tp]:
            self._views[tp] = LedgerView.of(self._ledger.committed(tp, metadata=True))
        self._highest[tp] = max(record.offset, self._highest.get(tp, -1))
        return self._views[tp]

    def teardown(self) -> None:
        self._ledger.close()


class SkipEndedRecords(beam.PTransform):
    """Of the records read from ``topics``, drops those of ``once_topics`` that the ended
    ledger records as ended (module docstring): ``records`` and ``gaps``. Aligns the ledger
    with the group when it expands, after the read's start offsets are committed."""

    def __init__(self, connection: KafkaConnection, topics: list[str], once_topics: list[str]):
        super().__init__()
        self._connection = connection
        self._topics = topics
        self._once_topics = frozenset(once_topics)

    def expand(self, records: beam.PCollection[KafkaRecord]) -> dict[str, beam.PCollection]:
        partitions = list_partitions(self._connection, self._topics)
        align_ledger(self._connection, [TopicPartition(t, p) for t, p in partitions])
        skipped = records | 'SkipEnded' >> beam.ParDo(
            _SkipEndedFn(self._connection, self._once_topics)
        ).with_outputs(GAPS, main=RECORDS)
        return {RECORDS: skipped[RECORDS], GAPS: skipped[GAPS]}
