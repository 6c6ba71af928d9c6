"""CommitEndedOffsets: commits a partition's offset once every record before it has ended.

In:  PCollection[EndedOffsets] from every place a record ends: its predictions or dead
     letter acknowledged by the broker, its entry's context stored in the session, its
     "no coupon above the threshold" counted; and gaps the read skipped.
Out: nothing; offsets committed to the consumer group.
State, per topic-partition (a stateful DoFn keyed by "topic/partition"): the next offset
  to commit (first taken from the group's committed offset, where the read started) and
  the ranges ended beyond it, which wait for the ones before them.

Why not commit when the read's bundle is finalized: that says the runner holds the
records, not that they have been processed. A runner without durable state (Prism) loses
what is in flight when it stops, and a restart would then skip it. Committing only the
frontier of ended records makes a restart read those again: nothing is lost, and what is
repeated carries the same ``focus_event_id``. A record that never ends holds its
partition's commits back (``offsets.ended_ahead`` grows), so a restart replays it.
"""
from __future__ import annotations

import logging
import typing
from typing import Optional

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from transforms.domain import EndedOffsets
from transforms.kafka_python import KafkaConnection

_LOGGER = logging.getLogger(__name__)
Ahead = dict[int, int]  # start -> end of ended ranges beyond the next offset to commit


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


class _CommitFrontierFn(beam.DoFn):
  NEXT = ReadModifyWriteStateSpec('next', coders.VarIntCoder())
  AHEAD = ReadModifyWriteStateSpec('ahead', coders.PickleCoder())

  def __init__(self, connection: KafkaConnection):
    self._connection = connection
    self._commits = Metrics.counter('offsets', 'commits')
    self._ahead_size = Metrics.distribution('offsets', 'ended_ahead')

  def setup(self) -> None:
    self._consumer = self._connection.consumer('committer')

  def start_bundle(self) -> None:
    self._to_commit: dict[TopicPartition, int] = {}

  def process(self, keyed: tuple[str, EndedOffsets],
              next_state=beam.DoFn.StateParam(NEXT),
              ahead_state=beam.DoFn.StateParam(AHEAD)) -> None:
    _, ended = keyed
    tp = TopicPartition(ended.topic, ended.partition)
    current = next_state.read()
    if current is None:
      current = self._committed(tp, ended.start)
    ahead: Ahead = ahead_state.read() or {}
    next_offset = advance(current, ahead, ended)
    next_state.write(next_offset)
    ahead_state.write(ahead)
    self._ahead_size.update(len(ahead))
    if next_offset > current:
      self._to_commit[tp] = next_offset

  def _committed(self, tp: TopicPartition, fallback: int) -> int:
    """Where the read started: the read commits its start for a group that had none."""
    committed: Optional[int] = self._consumer.committed(tp)
    if committed is None:
      _LOGGER.warning('No committed offset for %s; committing from %d on', tp, fallback)
      return fallback
    return committed

  def finish_bundle(self) -> None:
    if self._to_commit:
      self._consumer.commit({tp: OffsetAndMetadata(offset, '', -1)
                             for tp, offset in self._to_commit.items()})
      self._commits.inc(len(self._to_commit))

  def teardown(self) -> None:
    self._consumer.close()


class CommitEndedOffsets(beam.PTransform):
  """Commits, per partition, the offset below which every record has ended."""

  def __init__(self, connection: KafkaConnection):
    super().__init__()
    self._connection = connection

  def expand(self, ended: beam.PCollection[EndedOffsets]) -> beam.pvalue.PDone:
    (ended
     | 'ByPartition' >> beam.Map(lambda e: (e.topic_partition, e)).with_output_types(
         beam.typehints.KV[str, typing.Any])
     | 'CommitFrontier' >> beam.ParDo(_CommitFrontierFn(self._connection)))
    return beam.pvalue.PDone(ended.pipeline)
