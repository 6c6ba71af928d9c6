"""A Kafka connector that runs in the Python SDK harness, built on kafka-python.

Beam's ``apache_beam.io.kafka`` transforms are cross-language (Java KafkaIO) and
need a Java harness; this connector needs none, so it runs wherever Python
does (Prism, Flink with the Python harness, ...).

``ReadFromKafkaPython``
  In:  PBegin.  Out: unbounded PCollection[KafkaRecord], timestamped with the
  record's Kafka timestamp.
  State: an unbounded splittable DoFn, one element per topic-partition, whose
  restriction is the offset range [next offset, inf). Each call polls once,
  claims what it got and checkpoints the rest with ``defer_remainder``; the
  calls of one bundle share one ``poll_timeout_ms`` of waiting. The start offset is the consumer group's committed
  offset, else ``auto_offset_reset``. The watermark trails the newest record
  time by ``watermark_lag_s``; a caught-up (idle) partition advances it to the
  wall clock minus the same lag, so timers downstream keep firing. Offsets are
  committed to the group only in a bundle-finalization callback, i.e. for work
  the runner has durably committed (Prism and Flink call it; a runner that
  never finalizes bundles just never commits).

``WriteToKafkaPython``
  In:  PCollection[tuple[bytes | None, bytes]] (key, value).  Out: nothing.
  State: one producer (acks=all) per DoFn instance; every bundle is flushed
  and every send checked before the bundle completes, so a record is
  acknowledged by the broker before its input is considered done
  (at-least-once; consumers drop duplicates by the message's focus_event_id).
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from typing import Any, Iterator, Optional

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import Timestamp
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from transforms.domain import KafkaRecord

_LOGGER = logging.getLogger(__name__)
_MAX_POLL_RECORDS = 500


@dataclasses.dataclass(frozen=True)
class KafkaConnection:
  """What every kafka-python client of the pipeline is built from.

  The SASL password is a field of its own, left out of the repr, so that
  printing a connection (or a transform holding one) never shows it.
  """
  client_config: tuple[tuple[str, Any], ...]  # bootstrap servers, security; no secret
  client_id: str
  group_id: Optional[str] = None
  auto_offset_reset: str = 'latest'
  poll_timeout_ms: int = 100
  watermark_lag_s: float = 2.0
  sasl_password: Optional[str] = dataclasses.field(default=None, repr=False)

  def _client_config(self) -> dict[str, Any]:
    """The settings shared by every client: ``client_config`` and the password."""
    config = dict(self.client_config)
    if self.sasl_password is not None:
      config['sasl_plain_password'] = self.sasl_password
    return config

  def consumer(self, role: str) -> KafkaConsumer:
    return KafkaConsumer(
        **self._client_config(), client_id=f'{self.client_id}-{role}',
        group_id=self.group_id, enable_auto_commit=False,
        auto_offset_reset=self.auto_offset_reset,
        max_poll_records=_MAX_POLL_RECORDS)

  def producer(self, role: str) -> KafkaProducer:
    return KafkaProducer(
        **self._client_config(), client_id=f'{self.client_id}-{role}',
        acks='all', retries=5, linger_ms=1)


def list_partitions(connection: KafkaConnection, topics: list[str]) -> list[tuple[str, int]]:
  """The (topic, partition) pairs of ``topics``; a missing topic is an error."""
  consumer = connection.consumer('metadata')
  try:
    partitions = []
    for topic in topics:
      numbers = consumer.partitions_for_topic(topic)
      if not numbers:
        raise ValueError(f'Kafka topic {topic!r} does not exist on '
                         f'{dict(connection.client_config)["bootstrap_servers"]}')
      partitions.extend((topic, number) for number in sorted(numbers))
    return partitions
  finally:
    consumer.close()


class _UnboundedOffsetTracker(OffsetRestrictionTracker):
  """Offsets [start, inf): splits only to checkpoint, never by fraction."""

  def try_split(self, fraction_of_remainder: float):
    if fraction_of_remainder != 0:
      return None
    return super().try_split(0)

  def is_bounded(self) -> bool:
    return False


def start_offset(connection: KafkaConnection, tp: TopicPartition) -> int:
  """The group's committed offset of ``tp``, else where auto_offset_reset says."""
  consumer = connection.consumer('start-offsets')
  try:
    if connection.group_id:
      committed = consumer.committed(tp)
      if committed is not None:
        return committed
    if connection.auto_offset_reset == 'earliest':
      return consumer.beginning_offsets([tp])[tp]
    return consumer.end_offsets([tp])[tp]
  finally:
    consumer.close()


class _WatermarkState(WatermarkEstimatorProvider):
  def initial_estimator_state(self, partition, restriction) -> Optional[Timestamp]:
    return None

  def create_watermark_estimator(self, state: Optional[Timestamp]) -> ManualWatermarkEstimator:
    return ManualWatermarkEstimator(state)


class _OffsetCommitter:
  """Commits offsets to the consumer group, one thread at a time, never backwards."""

  def __init__(self, connection: KafkaConnection):
    self._consumer = connection.consumer('committer')
    self._lock = threading.Lock()
    self._committed: dict[TopicPartition, int] = {}

  def commit(self, tp: TopicPartition, next_offset: int) -> None:
    with self._lock:
      if self._committed.get(tp, -1) >= next_offset:
        return
      self._consumer.commit({tp: OffsetAndMetadata(next_offset, '', -1)})
      self._committed[tp] = next_offset

  def close(self) -> None:
    self._consumer.close()


def _to_record(message: Any) -> KafkaRecord:
  return KafkaRecord(
      topic=message.topic, partition=message.partition, offset=message.offset,
      key=message.key, value=message.value, timestamp_ms=message.timestamp,
      headers=tuple((name, value or b'') for name, value in message.headers or ()))


class _ReadPartitionFn(beam.DoFn, RestrictionProvider):
  """Reads one topic-partition per element, forever, a poll per call.

  It is its own restriction provider: a partition's restriction runs from its
  start offset to infinity.
  """

  def __init__(self, connection: KafkaConnection):
    super().__init__()
    self._connection = connection

  def initial_restriction(self, partition: tuple[str, int]) -> OffsetRange:
    return OffsetRange(start_offset(self._connection, TopicPartition(*partition)),
                       sys.maxsize)

  def create_tracker(self, restriction: OffsetRange) -> _UnboundedOffsetTracker:
    return _UnboundedOffsetTracker(restriction)

  def split(self, partition, restriction):
    yield restriction

  def restriction_size(self, partition, restriction) -> int:
    return 1  # the backlog is unknown here; no runner splits by it

  def truncate(self, partition, restriction) -> None:
    return None  # on drain, stop reading

  def setup(self) -> None:
    self._consumers: dict[TopicPartition, KafkaConsumer] = {}
    self._next_offsets: dict[TopicPartition, int] = {}
    self._committer = _OffsetCommitter(self._connection) if self._connection.group_id else None

  def _positioned_consumer(self, tp: TopicPartition, offset: int) -> KafkaConsumer:
    """The partition's consumer, about to fetch ``offset``.

    The next offset is tracked here rather than asked of the consumer:
    kafka-python 2.2's ``position()`` can spin forever on a freshly assigned
    partition whose metadata it has not loaded.
    """
    consumer = self._consumers.get(tp)
    if consumer is None:
      consumer = self._consumers[tp] = self._connection.consumer('reader')
      consumer.assign([tp])
    if self._next_offsets.get(tp) != offset:
      consumer.seek(tp, offset)
    return consumer

  @beam.DoFn.unbounded_per_element()
  def process(
      self,
      partition: tuple[str, int],
      finalizer=beam.DoFn.BundleFinalizerParam,  # before the SDF params: see NOTE
      tracker=beam.DoFn.RestrictionParam(),
      watermark=beam.DoFn.WatermarkEstimatorParam(_WatermarkState()),
  ) -> Iterator[beam.window.TimestampedValue]:
    # NOTE: Beam 2.73 maps a BundleFinalizerParam declared after the
    # restriction parameter onto the restriction's position.
    tp = TopicPartition(*partition)
    start = tracker.current_restriction().start
    consumer = self._positioned_consumer(tp, start)
    messages = consumer.poll(timeout_ms=self._poll_budget_ms(),
                             max_records=_MAX_POLL_RECORDS).get(tp, [])
    newest_ms = None
    next_offset = start
    for message in messages:
      if not tracker.try_claim(message.offset):
        return
      next_offset = message.offset + 1
      newest_ms = max(newest_ms or message.timestamp, message.timestamp)
      yield beam.window.TimestampedValue(_to_record(message), message.timestamp / 1000)
    self._next_offsets[tp] = next_offset
    self._advance_watermark(watermark, newest_ms)
    # Prism asks every bundle of a finalizing DoFn to finalize; register always.
    finalizer.register(lambda: self._commit(tp, next_offset, start))
    tracker.defer_remainder()

  def start_bundle(self) -> None:
    self._poll_deadline: Optional[float] = None

  def _poll_budget_ms(self) -> int:
    """What is left of this bundle's poll_timeout_ms.

    A runner may put every partition's residual in one bundle (Prism does),
    and a stateful stage downstream waits for all of them to advance the
    watermark; so the wait is shared by the bundle, not spent per partition.
    """
    now = time.monotonic()
    if self._poll_deadline is None:
      self._poll_deadline = now + self._connection.poll_timeout_ms / 1000
    return max(0, int((self._poll_deadline - now) * 1000))

  def _advance_watermark(self, watermark: ManualWatermarkEstimator,
                         newest_ms: Optional[int]) -> None:
    reference_s = time.time() if newest_ms is None else newest_ms / 1000
    candidate = Timestamp.of(reference_s - self._connection.watermark_lag_s)
    current = watermark.current_watermark()
    if current is None or candidate > current:
      watermark.set_watermark(candidate)

  def _commit(self, tp: TopicPartition, next_offset: int, start: int) -> None:
    if self._committer is None or next_offset == start:
      return
    try:
      self._committer.commit(tp, next_offset)
    except Exception:  # a failed commit only means a re-read after a restart
      _LOGGER.warning('Could not commit offset %d of %s', next_offset, tp, exc_info=True)

  def teardown(self) -> None:
    for consumer in self._consumers.values():
      consumer.close()
    if self._committer is not None:
      self._committer.close()


class ReadFromKafkaPython(beam.PTransform):
  """Unbounded read of ``topics`` into KafkaRecords (see the module docstring)."""

  def __init__(self, connection: KafkaConnection, topics: list[str]):
    super().__init__()
    self._connection = connection
    self._topics = topics

  def expand(self, begin: beam.pvalue.PBegin) -> beam.PCollection[KafkaRecord]:
    partitions = list_partitions(self._connection, self._topics)
    return (begin
            | 'TopicPartitions' >> beam.Create(partitions)
            | 'SpreadPartitions' >> beam.Reshuffle()
            | 'ReadPartitions' >> beam.ParDo(_ReadPartitionFn(self._connection)))


class _WriteFn(beam.DoFn):
  """Sends each (key, value) and waits for every acknowledgement per bundle."""

  def __init__(self, connection: KafkaConnection, topic: str):
    self._connection = connection
    self._topic = topic

  def setup(self) -> None:
    self._producer = self._connection.producer('writer')

  def start_bundle(self) -> None:
    self._pending: list[Any] = []

  def process(self, message: tuple[Optional[bytes], bytes]) -> None:
    key, value = message
    self._pending.append(self._producer.send(self._topic, key=key, value=value))

  def finish_bundle(self) -> None:
    self._producer.flush()
    for future in self._pending:
      future.get()  # raises if the broker did not take it: the bundle is retried
    self._pending = []

  def teardown(self) -> None:
    self._producer.close()


class WriteToKafkaPython(beam.PTransform):
  """Writes (key, value) pairs to ``topic`` with acks=all, flushed per bundle."""

  def __init__(self, connection: KafkaConnection, topic: str):
    super().__init__()
    self._connection = connection
    self._topic = topic

  def expand(self, messages: beam.PCollection[tuple[Optional[bytes], bytes]]) -> beam.pvalue.PDone:
    return messages | 'Produce' >> beam.ParDo(_WriteFn(self._connection, self._topic))
