"""ReadKafkaSpans: a bounded read of given offset spans of topic-partitions, for jobs that
look at the past (a replay, a re-drive of dead letters).

In:  PBegin; the spans are fixed when the pipeline is built (``OffsetSpan``: a topic-partition
     and offsets [start, end), found with the broker's offsets-for-times by
     ``transforms.kafka.connection.spans_between``, or single offsets named by dead letters).
Out: ``records``      PCollection[KafkaRecord], timestamped with the Kafka timestamp: those
                      of the spans whose timestamp lies in [from_ms, to_ms) when a time range
                      is given (a producer's timestamps need not grow with the offsets);
     ``undecodable``  PCollection[UndecodableBatch]: ranges the client could not decode.
State: none kept; one consumer per worker process and run (transforms.kafka.fetcher). A span
is a splittable DoFn's restriction, so a runner may split a long one across workers.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Callable, Iterable, Iterator, Optional

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider
from kafka import TopicPartition

from transforms.domain import KafkaRecord, UndecodableBatch
from transforms.kafka import fetcher
from transforms.kafka.connection import KafkaConnection, OffsetSpan
from transforms.kafka.fetcher import Fetched
from transforms.kafka.python_io import kafka_record

_LOGGER = logging.getLogger(__name__)
RECORDS = 'records'
UNDECODABLE = 'undecodable'
FETCH_WAIT_MS = 500
STALL_TIMEOUT_S = 60.0  # offsets below a span's end that the broker stops handing out


class _SpanRestrictions(RestrictionProvider):
    def initial_restriction(self, span: OffsetSpan) -> OffsetRange:
        return OffsetRange(span.start, span.end)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, span: OffsetSpan, restriction: OffsetRange) -> int:
        return restriction.size()


@dataclasses.dataclass(frozen=True)
class TimeRange:
    """[from_ms, to_ms) of Kafka record timestamps; None: every record of the spans."""

    from_ms: int
    to_ms: int

    def holds(self, timestamp_ms: int) -> bool:
        return self.from_ms <= timestamp_ms < self.to_ms


def span_items(fetch: Callable[[TopicPartition, int], Fetched], span: OffsetSpan) -> Iterator[Any]:
    """The span's records (kafka-python's) and undecodable ranges (UndecodableBatch), in
    offset order, from ``fetch`` (a SharedFetcher's, waiting a while)."""
    tp = TopicPartition(span.topic, span.partition)
    offset, stalled_since = span.start, time.monotonic()
    while offset < span.end:
        fetched = fetch(tp, offset)
        if fetched.undecodable is not None:
            yield fetched.undecodable
        yield from (message for message in fetched.records if message.offset < span.end)
        reached = min(fetched.next_offset, span.end)
        if reached > offset:
            offset, stalled_since = reached, time.monotonic()
        elif time.monotonic() - stalled_since > STALL_TIMEOUT_S:
            raise TimeoutError(
                f'{tp.topic}/{tp.partition}: no record from offset {offset} for '
                f'{STALL_TIMEOUT_S:.0f} s, below the end {span.end} found at start'
            )


def read_spans(connection: KafkaConnection, spans: Iterable[OffsetSpan]) -> Iterator[KafkaRecord]:
    """The spans' records, read here (not in a job): for a driver's few records. What cannot
    be decoded is skipped, and logged."""
    shared = fetcher.SharedFetcher(lambda: connection.consumer('driver'))
    try:
        for span in spans:
            for item in span_items(functools.partial(shared.fetch, wait_ms=FETCH_WAIT_MS), span):
                if isinstance(item, UndecodableBatch):
                    _LOGGER.warning('skipped, undecodable: %s', item)
                else:
                    yield kafka_record(item)
    finally:
        shared.close()


class _ReadSpanFn(beam.DoFn):
    """Reads one span per element (restriction: its offsets), then ends."""

    def __init__(self, connection: KafkaConnection, run_id: str, times: Optional[TimeRange]):
        super().__init__()
        self._connection = connection
        self._run_id = run_id
        self._times = times

    def setup(self) -> None:
        self._fetcher = fetcher.acquire(self._run_id, lambda: self._connection.consumer('replay'))
        self._outside = Metrics.counter('replay', 'records_outside_time_range')

    def teardown(self) -> None:
        fetcher.release(self._run_id)

    def process(
        self, span: OffsetSpan, tracker=beam.DoFn.RestrictionParam(_SpanRestrictions())
    ) -> Iterator[object]:
        claim = _Claims(tracker)
        part = OffsetSpan(span.topic, span.partition, claim.range.start, claim.range.stop)
        fetch = functools.partial(self._fetcher.fetch, wait_ms=FETCH_WAIT_MS)
        for item in span_items(fetch, part):
            undecodable = isinstance(item, UndecodableBatch)
            if not claim(item.start if undecodable else item.offset):
                return
            if undecodable:
                yield beam.pvalue.TaggedOutput(UNDECODABLE, item)
            else:
                yield from self._in_time_range(kafka_record(item))
        claim.through(part.end - 1)  # markers, aborted records up to the end: no record there

    def _in_time_range(self, record: KafkaRecord) -> Iterator[beam.window.TimestampedValue]:
        if self._times is not None and not self._times.holds(record.timestamp_ms):
            self._outside.inc()
            return
        yield beam.window.TimestampedValue(record, record.timestamp_ms / 1000)


class _Claims:
    """The tracker's claims, remembering the last one (a claim must go up)."""

    def __init__(self, tracker: OffsetRestrictionTracker):
        self._tracker = tracker
        self.range: OffsetRange = tracker.current_restriction()
        self._last = self.range.start - 1

    def __call__(self, offset: int) -> bool:
        self._last = offset
        return self._tracker.try_claim(offset)

    def through(self, last: int) -> None:
        """Claims up to ``last``: the span is done even where no record was."""
        if last > self._last:
            self(last)


class ReadKafkaSpans(beam.PTransform):
    """Reads ``spans`` once: ``records`` (of ``times`` only, if given) and ``undecodable``."""

    def __init__(
        self,
        connection: KafkaConnection,
        spans: list[OffsetSpan],
        run_id: str,
        times: Optional[TimeRange] = None,
    ):
        super().__init__()
        self._connection = connection
        self._spans = spans
        self._run_id = run_id
        self._times = times

    def expand(self, begin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        read = (
            begin
            | 'Spans' >> beam.Create(self._spans)
            | 'ReadSpans'
            >> beam.ParDo(_ReadSpanFn(self._connection, self._run_id, self._times)).with_outputs(
                UNDECODABLE, main=RECORDS
            )
        )
        return {RECORDS: read[RECORDS], UNDECODABLE: read[UNDECODABLE]}
