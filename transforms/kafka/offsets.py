"""CommitEndedOffsets: commits a partition's offset once every record before it has ended.

In:  PCollection[EndedOffsets] from every place a record ends: its entry's context stored
     in the session, its "no coupon above the threshold" counted, a dropped dead letter;
     and gaps the read skipped. What the Kafka writer publishes (predictions, dead
     letters) it ends itself, through ``CommitOnAcknowledgement``, as the broker
     acknowledges it.
Out: nothing; offsets committed to the consumer group.
State: in the worker process (``keyed=True``: in Beam state), per topic-partition, the next offset to
  commit (first the group's committed offset, where the read started) and the ranges
  ended beyond it, which wait for the ones before them; one set per run and process
  (``frontiers``), shared by the committer and the writers, updated under a lock, and
  committed to Kafka, never backwards, at the end of each committer bundle and as writes
  are acknowledged; what is committed is told to the run's
  progress (transforms.kafka.drain), so that a drain knows when everything read has ended.

Why not commit when the read's bundle is finalized: that says the runner holds the
records, not that they have been processed. A runner without durable state (Prism) loses
what is in flight when it stops, and a restart would then skip it. Committing only the
frontier of ended records makes a restart read those again: nothing is lost, and what is
repeated carries the same ``focus_event_id``. Records end out of order (a focus event
waits for the scorer while later entries are stored), so each commit also carries, in its
metadata, the ranges that ended beyond the frontier: a restart after a crash skips those
(transforms.kafka.python_io) and repeats only what was really in flight. A record that never ends holds its
partition's commits back (``offsets.ended_ahead`` grows), so a restart replays it.

Why not Beam state everywhere (a stateful DoFn keyed by partition, as first built): on
Prism 2.73 an update of that state was lost now and then (a partition's commits stopped at
an offset whose record had ended: 6 runs of 6 of the fixed scenario), the same kind of loss
the customer session showed while it buffered focus events. The process's memory is exact
on Prism, whose Python worker is one process (LOOPBACK).

With several worker processes (Flink's PROCESS environment) a process sees only part of a
partition's marks: ``CommitEndedOffsets(keyed=True)`` keys the marks by topic-partition,
so that each partition's marks meet in one place, and keeps its frontier in Beam state
(Flink checkpoints it); writers then hand their acknowledged sources on as ``ended``
instead of committing them themselves. A frontier restored from a checkpoint stands below
what was committed since: where a process first meets a partition, or its state went back,
the frontier is joined with the group's last commit (offset and ranges), so that commits
never go back. With KafkaIO's read on Flink the group is the ended ledger,
``<GROUP_ID>.ended`` (transforms.kafka.ledger).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from typing import Optional

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from transforms.domain import EndedOffsets
from transforms.kafka import drain
from transforms.kafka.commit_metadata import Ahead, ended_ahead_metadata, ended_ahead_ranges
from transforms.kafka.connection import KafkaConnection

_LOGGER = logging.getLogger(__name__)


def advance(next_offset: int, ahead: Ahead, ended: EndedOffsets) -> int:
    """The next offset to commit once ``ended`` is known; ``ahead`` keeps what cannot be yet."""
    if ended.end > next_offset:
        ahead[ended.start] = max(ahead.get(ended.start, ended.start), ended.end)
    while True:
        reachable = [start for start in ahead if start <= next_offset]
        if not reachable:
            return next_offset
        for start in reachable:
            next_offset = max(next_offset, ahead.pop(start))


class _Frontiers:
    """Every partition's frontier in this process; commits them, one caller at a time."""

    def __init__(self, consumer: KafkaConsumer, progress: drain.RunProgress):
        self._consumer = consumer
        self._progress = progress
        self._next: dict[TopicPartition, int] = {}
        self._ahead: dict[TopicPartition, Ahead] = {}
        self._committed: dict[TopicPartition, tuple[int, Optional[str]]] = {}
        self._lock = threading.Lock()

    def end(self, ended: EndedOffsets) -> int:
        """Takes ``ended`` into its partition's frontier; returns how many ranges wait there."""
        tp = TopicPartition(ended.topic, ended.partition)
        with self._lock:
            if tp not in self._next:
                self._next[tp] = self._group_offset(tp, ended.start)
            ahead = self._ahead.setdefault(tp, {})
            self._next[tp] = advance(self._next[tp], ahead, ended)
            return len(ahead)

    def commit(self) -> int:
        """Commits every partition whose frontier, or what ended beyond it, moved; returns how
        many. What ended beyond the frontier goes in the commit's metadata, so that a restart
        after a crash skips it (transforms.kafka.python_io) instead of repeating it."""
        with self._lock:
            marks = {
                tp: (offset, ended_ahead_metadata(self._ahead.get(tp, {})))
                for tp, offset in self._next.items()
            }
            moved = {tp: mark for tp, mark in marks.items() if mark != self._committed.get(tp)}
            if moved:
                self._consumer.commit(
                    {
                        tp: OffsetAndMetadata(offset, metadata, -1)
                        for tp, (offset, metadata) in moved.items()
                    }
                )
                self._committed.update(moved)
                for tp, (offset, _) in moved.items():
                    self._progress.committed((tp.topic, tp.partition), offset)
            return len(moved)

    def _group_offset(self, tp: TopicPartition, fallback: int) -> int:
        committed = group_commit(self._consumer, tp)
        if committed is None:
            return fallback
        self._committed[tp] = (committed.offset, None)
        return committed.offset


def group_commit(consumer: KafkaConsumer, tp: TopicPartition) -> Optional[OffsetAndMetadata]:
    """The group's last commit of ``tp``, with its metadata: where the read started (None:
    the read starts the group at its reset position, and the first offset that ends is taken
    as the start)."""
    committed: Optional[OffsetAndMetadata] = consumer.committed(tp, metadata=True)
    if committed is None:
        _LOGGER.warning('No committed offset for %s; committing from its first ended offset', tp)
    return committed


_FRONTIERS: dict[str, _Frontiers] = {}
_FRONTIERS_LOCK = threading.Lock()


def frontiers(run_id: str, connection: KafkaConnection) -> _Frontiers:
    """The frontiers of run ``run_id`` in this process, made on first use."""
    with _FRONTIERS_LOCK:
        if run_id not in _FRONTIERS:
            _FRONTIERS[run_id] = _Frontiers(
                connection.consumer('committer'), drain.progress(run_id)
            )
        return _FRONTIERS[run_id]


@dataclasses.dataclass(frozen=True)
class CommitOnAcknowledgement:
    """What the Kafka writer calls with the sources the broker just acknowledged: ends them
    in the run's frontiers and commits at once. Sent on through the pipeline at the end of
    the writer's bundle instead, they were committed seconds after their messages could be
    read: after a SIGKILL, the focus events repeated were exactly those written and not
    yet committed (324 of 324 in one run)."""

    connection: KafkaConnection
    run_id: str

    def __call__(self, acknowledged: list[EndedOffsets]) -> None:
        run = frontiers(self.run_id, self.connection)
        for ended in acknowledged:
            run.end(ended)
        run.commit()


class _CommitFrontierFn(beam.DoFn):
    def __init__(self, connection: KafkaConnection, run_id: str):
        self._connection = connection
        self._run_id = run_id  # one set of frontiers per pipeline run and process
        self._commits = Metrics.counter('offsets', 'commits')
        self._ahead_size = Metrics.distribution('offsets', 'ended_ahead')

    def setup(self) -> None:
        self._frontiers = frontiers(self._run_id, self._connection)

    def process(self, ended: EndedOffsets) -> None:
        self._ahead_size.update(self._frontiers.end(ended))

    def finish_bundle(self) -> None:
        self._commits.inc(self._frontiers.commit())


class _CommitPartitionFrontierFn(beam.DoFn):
    """Keyed by topic-partition: the partition's frontier in Beam state, committed at the end
    of each bundle."""

    FRONTIER = ReadModifyWriteStateSpec('frontier', coders.PickleCoder())  # (next, Ahead)

    def __init__(self, connection: KafkaConnection):
        self._connection = connection
        self._commits = Metrics.counter('offsets', 'commits')
        self._ahead_size = Metrics.distribution('offsets', 'ended_ahead')

    def setup(self) -> None:
        self._consumer = self._connection.consumer('committer')
        self._committed_next: dict[TopicPartition, int] = {}  # where this instance left each

    def start_bundle(self) -> None:
        self._marks: dict[TopicPartition, OffsetAndMetadata] = {}

    def process(
        self,
        keyed: tuple[str, EndedOffsets],
        frontier=beam.DoFn.StateParam(FRONTIER),
    ) -> None:
        _, ended = keyed
        tp = TopicPartition(ended.topic, ended.partition)
        next_offset, ahead = frontier.read() or (None, {})
        if next_offset is None or next_offset < self._committed_next.get(tp, sys.maxsize):
            # first met here, or the state went back: restored from a checkpoint
            next_offset = self._catch_up(tp, next_offset, ahead, ended.start)
        next_offset = advance(next_offset, ahead, ended)
        frontier.write((next_offset, ahead))
        self._marks[tp] = OffsetAndMetadata(next_offset, ended_ahead_metadata(ahead), -1)
        self._committed_next[tp] = next_offset
        self._ahead_size.update(len(ahead))

    def finish_bundle(self) -> None:
        if self._marks:
            self._consumer.commit(self._marks)
            self._commits.inc(len(self._marks))

    def teardown(self) -> None:
        self._consumer.close()

    def _catch_up(
        self, tp: TopicPartition, next_offset: Optional[int], ahead: Ahead, fallback: int
    ) -> int:
        """The frontier joined with the group's last commit (see ``joined_with_commit``)."""
        return joined_with_commit(next_offset, ahead, group_commit(self._consumer, tp), fallback)


def joined_with_commit(
    next_offset: Optional[int],
    ahead: Ahead,
    committed: Optional[OffsetAndMetadata],
    fallback: int,
) -> int:
    """A frontier (``next_offset``, None before the partition's first mark, and ``ahead``,
    updated in place) joined with the group's last commit, which is ahead of it after a
    restore from a checkpoint (it was committed since); with neither, ``fallback``."""
    if committed is None:
        return fallback if next_offset is None else next_offset
    for start, end in ended_ahead_ranges(committed.metadata):
        ahead[start] = max(ahead.get(start, start), end)
    return max(committed.offset, -1 if next_offset is None else next_offset)


def _by_partition(ended: EndedOffsets) -> tuple[str, EndedOffsets]:
    return ended.topic_partition, ended


class CommitEndedOffsets(beam.PTransform):
    """Commits, per partition, the offset below which every record has ended. ``keyed``: the
    marks meet per partition in a keyed step (several worker processes); otherwise in the
    worker process's memory, shared with the writers' ``CommitOnAcknowledgement``."""

    def __init__(self, connection: KafkaConnection, run_id: str, keyed: bool = False):
        super().__init__()
        self._connection = connection
        self._run_id = run_id
        self._keyed = keyed

    def expand(self, ended: beam.PCollection[EndedOffsets]) -> beam.pvalue.PDone:
        if self._keyed:
            (
                ended
                | 'KeyByPartition' >> beam.Map(_by_partition)
                | 'CommitPartitionFrontier'
                >> beam.ParDo(_CommitPartitionFrontierFn(self._connection))
            )
        else:
            ended | 'CommitFrontier' >> beam.ParDo(
                _CommitFrontierFn(self._connection, self._run_id)
            )
        return beam.pvalue.PDone(ended.pipeline)
