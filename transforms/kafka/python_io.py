"""A Kafka connector that runs in the Python SDK harness, built on kafka-python.

Beam's ``apache_beam.io.kafka`` transforms are cross-language (Java KafkaIO) and
need a Java harness; this connector needs none, so it runs wherever Python
does (Prism, Flink with the Python harness, ...).

``ReadFromKafkaPython``
  In:  PBegin.  Out: ``records``: unbounded PCollection[KafkaRecord], timestamped with the
  record's Kafka timestamp; ``gaps``: PCollection[EndedOffsets] (below); ``undecodable``:
  PCollection[UndecodableBatch], ranges the client could not decode (a codec it lacks,
  corrupt data, a CRC mismatch), skipped so that no batch can stop the read.
  Transactions: ``isolation_level`` read_committed (the default) hands out only committed
  records; records of aborted transactions and the transaction markers are offsets
  without a record.
  State: the topics' partitions come from transforms.kafka.partitions, which also
  finds those added while the pipeline runs. An unbounded splittable DoFn, one
  element per topic-partition, whose
  restriction is the offset range [next offset, inf). Each call takes its
  partition's records from the process's one consumer (transforms.kafka.fetcher),
  claims them and checkpoints the rest with ``defer_remainder``; the calls of
  one bundle share one ``poll_timeout_ms`` of waiting, and stop waiting once the
  bundle has records to hand on. The start
  offset is the consumer group's committed offset, else the partition's reset
  policy (``auto_offset_reset``; ``earliest`` for a partition added while running),
  then committed, so that the group always has one. The watermark trails
  the newest record time by ``watermark_lag_s``; a caught-up (idle) partition
  advances it to the wall clock minus the same lag, so timers downstream keep
  firing. Once a drain is asked for (transforms.kafka.drain) it fetches nothing more, and
  the watermark goes on with the wall clock. The read commits nothing itself: offsets are committed once their
  records have ended (transforms.kafka.offsets); offsets it skips because they hold
  no record (compaction, transaction markers, aborted records), the rest of an
  undecodable range after its first offset (which ends with its dead letter), or
  because the group's last commit says they ended already (before a crash), come out
  as ``gaps`` for that purpose.

``WriteToKafkaPython``
  In:  PCollection[Outgoing] (an input record's messages, key and value).
  Out: PCollection[EndedOffsets]: the sources of the messages, once acknowledged.
  State: one producer (acks=all) per DoFn instance; every bundle is flushed
  and every send checked before the bundle completes and before its sources
  are output as ended (at-least-once; consumers drop duplicates by the
  message's focus_event_id).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import sys
import time
from typing import Any, Callable, Iterator, Optional

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import WatermarkEstimatorProvider
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue
from kafka import TopicPartition
from kafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from transforms.domain import EndedOffsets, FailedWrite, KafkaRecord, Outgoing, UndecodableBatch
from transforms.kafka import drain, fetcher
from transforms.kafka.commit_metadata import ended_ahead_ranges
from transforms.kafka.connection import KafkaConnection, list_partitions, start_offsets
from transforms.kafka.partitions import PartitionToRead, WatchPartitions
from transforms.kafka.restrictions import UnboundedRestrictions

_LOGGER = logging.getLogger(__name__)
RECORDS, GAPS, UNDECODABLE = 'records', 'gaps', 'undecodable'
ENDED, FAILED = 'ended', 'failed'
_BATCH_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
Acknowledged = Callable[[list[EndedOffsets]], None]
ACKNOWLEDGED_EVERY_S = 0.1


class _WatermarkState(WatermarkEstimatorProvider):
    def initial_estimator_state(self, partition, restriction) -> Optional[Timestamp]:
        return None

    def create_watermark_estimator(self, state: Optional[Timestamp]) -> ManualWatermarkEstimator:
        return ManualWatermarkEstimator(state)


def kafka_record(message: Any) -> KafkaRecord:
    """A kafka-python ConsumerRecord as the pipeline's KafkaRecord."""
    return KafkaRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=message.timestamp,
        headers=tuple((name, value or b'') for name, value in message.headers or ()),
    )


def _gap(where: Any, start: int, end: int) -> beam.pvalue.TaggedOutput:
    """Offsets [start, end) of ``where``'s topic-partition that ended with no record to end
    them (markers, aborted records, compaction, an undecodable range's rest, ended before)."""
    return beam.pvalue.TaggedOutput(GAPS, EndedOffsets(where.topic, where.partition, start, end))


class _ReadPartitionFn(beam.DoFn, UnboundedRestrictions):
    """Reads one topic-partition per element, forever, a poll per call.

    It is its own restriction provider: a partition's restriction runs from its
    start offset to infinity.
    """

    def __init__(self, connection: KafkaConnection, run_id: str):
        super().__init__()
        self._connection = connection
        self._run_id = run_id

    def initial_restriction(self, partition: PartitionToRead) -> OffsetRange:
        tp = TopicPartition(partition.topic, partition.partition)
        connection = dataclasses.replace(self._connection, auto_offset_reset=partition.reset)
        return OffsetRange(start_offsets(connection, [tp])[tp], sys.maxsize)

    def setup(self) -> None:
        self._fetcher = fetcher.acquire(self._run_id, lambda: self._connection.consumer('reader'))
        self._ended_before: dict[TopicPartition, list[tuple[int, int]]] = {}
        self._skipped = Metrics.counter('offsets', 'skipped_ended_before_restart')
        self._polls = Metrics.counter('events', 'polls')  # how a driver elsewhere sees it read
        self._undecodable = Metrics.counter('events', 'undecodable_batches')
        self._progress = drain.progress(self._run_id)

    def _fetch(self, tp: TopicPartition, offset: int) -> fetcher.Fetched:
        """``tp``'s records from ``offset``, waiting at most what is left of the bundle's wait,
        and not at all once the bundle handed records on (its round is done)."""
        if tp not in self._ended_before:
            self._ended_before[tp] = self._ended_ahead_of_commit(tp)
        wait_ms = 0 if self._bundle_read_records else self._poll_budget_ms()
        fetched = self._fetcher.fetch(tp, offset, wait_ms)
        self._polls.inc()
        self._bundle_read_records = self._bundle_read_records or bool(fetched.records)
        return fetched

    def _ended_ahead_of_commit(self, tp: TopicPartition) -> list[tuple[int, int]]:
        """The ranges the group's last commit says ended beyond it (transforms.kafka.offsets)."""
        if not self._connection.group_id:
            return []
        with self._fetcher.consumer() as consumer:
            committed = consumer.committed(tp, metadata=True)
        return ended_ahead_ranges(committed.metadata if committed else None)

    def _ended_already(self, tp: TopicPartition, offset: int) -> bool:
        return any(start <= offset < end for start, end in self._ended_before[tp])

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        partition: PartitionToRead,
        tracker=beam.DoFn.RestrictionParam(),
        watermark=beam.DoFn.WatermarkEstimatorParam(_WatermarkState()),
    ) -> Iterator[beam.window.TimestampedValue]:
        tp = TopicPartition(partition.topic, partition.partition)
        start = tracker.current_restriction().start
        if self._progress.draining:  # read nothing more; the watermark goes on
            time.sleep(self._poll_budget_ms() / 1000)
            self._advance_watermark(watermark, None)
            tracker.defer_remainder()
            return
        fetched = self._fetch(tp, start)
        newest_ms = None
        next_offset = start
        if fetched.undecodable is not None:
            if not tracker.try_claim(fetched.undecodable.end - 1):
                return
            yield from self._undecodable_range(fetched.undecodable, next_offset)
            next_offset = fetched.undecodable.end
        for message in fetched.records:
            if not tracker.try_claim(message.offset):
                return
            if message.offset > next_offset:  # no records there: nothing will end them
                yield _gap(tp, next_offset, message.offset)
            next_offset = message.offset + 1
            newest_ms = max(newest_ms or message.timestamp, message.timestamp)
            if self._ended_already(tp, message.offset):  # before a crash: not again
                self._skipped.inc()
                yield _gap(tp, message.offset, next_offset)
                continue
            yield beam.window.TimestampedValue(kafka_record(message), message.timestamp / 1000)
        if fetched.next_offset > next_offset:  # markers, aborted records: nothing to end them
            if not tracker.try_claim(fetched.next_offset - 1):
                return
            yield _gap(tp, next_offset, fetched.next_offset)
            next_offset = fetched.next_offset
        self._progress.read((tp.topic, tp.partition), start, next_offset)
        self._advance_watermark(watermark, newest_ms)
        tracker.defer_remainder()

    def _undecodable_range(self, batch: UndecodableBatch, next_offset: int) -> Iterator[Any]:
        """A range the client cannot decode: its first offset ends with its dead letter
        (``undecodable``), the rest, and any offsets before it without a record, as gaps."""
        self._undecodable.inc()
        ended = [(next_offset, batch.start), (batch.start + 1, batch.end)]
        for start, end in ended:
            if end > start:
                yield _gap(batch, start, end)
        yield beam.pvalue.TaggedOutput(UNDECODABLE, batch)

    def start_bundle(self) -> None:
        self._poll_deadline: Optional[float] = None
        self._bundle_read_records = False

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

    def _advance_watermark(
        self, watermark: ManualWatermarkEstimator, newest_ms: Optional[int]
    ) -> None:
        reference_s = time.time() if newest_ms is None else newest_ms / 1000
        candidate = Timestamp.of(reference_s - self._connection.watermark_lag_s)
        current = watermark.current_watermark()
        if current is None or candidate > current:
            watermark.set_watermark(candidate)

    def teardown(self) -> None:
        fetcher.release(self._run_id)


class ReadFromKafkaPython(beam.PTransform):
    """Unbounded read of ``topics`` (see the module docstring): ``records``, ``gaps``
    (EndedOffsets: offsets skipped because they hold no record) and ``undecodable``
    (UndecodableBatch: ranges skipped because they could not be decoded). A partition added
    to a topic while it runs is read within ``partition_discovery_s``."""

    def __init__(
        self,
        connection: KafkaConnection,
        topics: list[str],
        run_id: str,
        partition_discovery_s: float = 30.0,
    ):
        super().__init__()
        self._connection = connection
        self._topics = topics
        self._run_id = run_id
        self._partition_discovery_s = partition_discovery_s

    def expand(self, begin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        counts = collections.Counter(  # a missing topic stops the start here
            topic for topic, _ in list_partitions(self._connection, self._topics)
        )
        read = (
            begin
            | 'TopicPartitions'
            >> WatchPartitions(self._connection, dict(counts), self._partition_discovery_s)
            | 'SpreadPartitions' >> beam.Reshuffle()
            | 'ReadPartitions'
            >> beam.ParDo(_ReadPartitionFn(self._connection, self._run_id)).with_outputs(
                GAPS, UNDECODABLE, main=RECORDS
            )
        )
        return {RECORDS: read[RECORDS], GAPS: read[GAPS], UNDECODABLE: read[UNDECODABLE]}


class _WriteFn(beam.DoFn):
    """Sends the messages of each Outgoing; outputs each Outgoing's source as ended once the
    broker acknowledged its messages and those sent before them (every ``ACKNOWLEDGED_EVERY_S``
    during the bundle, the rest at its end, once the broker answered for every message), or
    the Outgoing as ``failed`` with the error when a message of it was refused or could not
    be sent within the write timeout."""

    def __init__(
        self, connection: KafkaConnection, topic: str, on_acknowledged: Optional[Acknowledged]
    ):
        self._connection = connection
        self._topic = topic
        self._on_acknowledged = on_acknowledged

    def setup(self) -> None:
        self._producer = self._connection.producer('writer')

    def start_bundle(self) -> None:
        self._sent: list[tuple[WindowedValue, list[Any]]] = []
        self._handed = 0  # how many of _sent went to on_acknowledged already
        self._handed_at = time.monotonic()
        self._topic_error: Optional[KafkaError] = None

    def process(
        self, outgoing: Outgoing, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam
    ) -> Iterator[WindowedValue]:
        futures = [self._send(key, value) for key, value in outgoing.messages]
        self._sent.append((WindowedValue(outgoing, timestamp, [window]), futures))
        if time.monotonic() - self._handed_at >= ACKNOWLEDGED_EVERY_S:
            yield from self._hand_over_acknowledged()

    def _hand_over_acknowledged(self) -> list[WindowedValue]:
        """Hands on the sources the broker acknowledged so far (the bundle's sends in order,
        up to the first one unanswered or refused): to ``on_acknowledged``, else as output.
        A bundle can run for seconds (the scorer's calls are in it) while its messages are
        already readable: once per bundle, a SIGKILL repeated every focus event written by the
        bundle (324 in one run, all written, none committed), and on Flink a restore repeated
        those the ended ledger had not heard of yet (66 focus events after a TaskManager kill
        under a cold start's backlog); now at most ``ACKNOWLEDGED_EVERY_S`` of them."""
        handed = []
        while self._handed < len(self._sent):
            sent, futures = self._sent[self._handed]
            if not all(_acknowledged(future) for future in futures):
                break
            if sent.value.source is not None:
                handed.append(sent.with_value(EndedOffsets.of(sent.value.source)))
            self._handed += 1
        self._handed_at = time.monotonic()
        if self._on_acknowledged is None:
            return handed
        if handed:
            self._on_acknowledged([ended.value for ended in handed])
        return []

    def _send(self, key: Optional[bytes], value: bytes) -> Any:
        """The send's future, or the error that refused it at once (too large for the producer,
        the topic's metadata not found within the write timeout: once per bundle, then the
        bundle's other sends fail with it without waiting again)."""
        if self._topic_error is not None:
            return self._topic_error
        try:
            return self._producer.send(self._topic, key=key, value=value)
        except KafkaTimeoutError as error:
            self._topic_error = error
            return error
        except KafkaError as error:
            return error

    def finish_bundle(self) -> Iterator[Any]:
        self._producer.flush()
        acknowledged: list[WindowedValue] = []
        for sent, futures in self._sent[self._handed :]:
            error = _first_error(futures)
            outgoing = sent.value
            if isinstance(error, _BATCH_TOO_LARGE):
                error = self._resend_alone(outgoing)
            if error is not None:
                yield beam.pvalue.TaggedOutput(
                    FAILED,
                    sent.with_value(FailedWrite(outgoing, f'{type(error).__name__}: {error}')),
                )
            elif outgoing.source is not None:
                acknowledged.append(sent.with_value(EndedOffsets.of(outgoing.source)))
        if self._on_acknowledged is None:
            yield from acknowledged
        elif acknowledged:
            self._on_acknowledged([ended.value for ended in acknowledged])

    def _resend_alone(self, outgoing: Outgoing) -> Optional[Exception]:
        """Sends each message of ``outgoing`` in a batch of its own: kafka-python batches
        records and does not split a batch the topic finds too large, so a refusal may be the
        batch's, not the record's. The error of the first message refused alone, if any."""
        for key, value in outgoing.messages:
            future = self._send(key, value)
            self._producer.flush()
            error = _first_error([future])
            if error is not None:
                return error
        return None

    def teardown(self) -> None:
        self._producer.close()


def _acknowledged(future: Any) -> bool:
    return not isinstance(future, Exception) and future.is_done and future.succeeded()


def _first_error(futures: list[Any]) -> Optional[Exception]:
    """The first error among sends that failed (an error in place of a future, or a failed
    future); None when the broker acknowledged every one."""
    for future in futures:
        if isinstance(future, Exception):
            return future
        if future.failed():
            return future.exception
    return None


class WriteToKafkaPython(beam.PTransform):
    """Writes Outgoing messages to ``topic`` with acks=all, flushed per bundle: ``ended``,
    the EndedOffsets of their sources once acknowledged, and ``failed`` (FailedWrite). With
    ``on_acknowledged``, the acknowledged sources go to it at the end of the writer's bundle
    instead (transforms.kafka.offsets.CommitOnAcknowledgement), and ``ended`` stays empty."""

    def __init__(
        self,
        connection: KafkaConnection,
        topic: str,
        on_acknowledged: Optional[Acknowledged] = None,
    ):
        super().__init__()
        self._connection = connection
        self._topic = topic
        self._on_acknowledged = on_acknowledged

    def expand(self, outgoing: beam.PCollection[Outgoing]) -> dict[str, beam.PCollection]:
        written = outgoing | 'Produce' >> beam.ParDo(
            _WriteFn(self._connection, self._topic, self._on_acknowledged)
        ).with_outputs(FAILED, main=ENDED)
        return {ENDED: written[ENDED], FAILED: written[FAILED]}
