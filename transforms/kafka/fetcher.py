"""One Kafka consumer per process for every partition the read handles (transforms.kafka.python_io).

In:  calls ``fetch(tp, offset, wait_ms)`` from the read's DoFn instances, on any thread.
Out: a ``Fetched``: the records of ``tp`` from ``offset`` that have arrived, at most ``wait_ms``
     after the call (sooner as soon as any partition has records); the offset the partition's
     next call starts at (past offsets that hold no record for this consumer: transaction
     markers, aborted records under read_committed); and, before the records, a range the
     client cannot decode, if the partition had one.
State: per process and run, one consumer (kafka-python's is not thread-safe: a lock guards
     it), assigned every partition asked for so far, and the records a poll returned for
     partitions other than the one asked: they wait here for their partition's next call.

Why one consumer: a runner hands the read all its partitions in one bundle (Prism does), and
the bundle's calls run one after the other. With a consumer per partition, each call waited
for its own partition, so a record arriving on another one waited for those waits, and a
bundle with one busy partition still lasted the whole poll time. Here the first call of a
round waits until any partition has records, the others find theirs already fetched, and
the bundle ends as soon as there is something to hand on.

A partition whose records wait here is paused, so it is not fetched again before they are
taken: what waits is at most one poll's worth.

No batch can stop the read. A batch the client cannot decode makes ``poll()`` raise for the
whole consumer, whatever partition it is on, and kafka-python's consumer then spins inside
every later ``poll()`` (its dead batch iterator is never drained). So the consumer is
replaced, and each partition the failed poll fetched is tried alone with a consumer of its
own (``_Probe``): the one that fails again at its position holds the batch, whose end is
found by seeking past it (each batch fails wherever inside it a fetch starts, and decodes
from the first offset after it). That range is handed to the partition's next call as an
``UndecodableBatch``; the other partitions go on from where they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Iterator, Optional

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CorruptRecordError, KafkaError, UnsupportedCodecError

from transforms.domain import UndecodableBatch

_LOGGER = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 5.0  # how long a probe waits for a partition's data to come back


@dataclasses.dataclass(frozen=True)
class Fetched:
    """What one call hands the read for its partition: ``undecodable`` (a skipped range) comes
    before ``records``; ``next_offset`` is where the partition's next call starts."""

    records: list[Any]
    next_offset: int
    undecodable: Optional[UndecodableBatch] = None


def is_undecodable(error: Exception) -> bool:
    """A failure to decode what the broker sent (the codec's own errors, CRC mismatches, broken
    framing), not a failure to talk to the broker (authorization, network, ...)."""
    if isinstance(error, (CorruptRecordError, UnsupportedCodecError)):
        return True
    return not isinstance(error, KafkaError)


class SharedFetcher:
    """The process's consumer for one run of the read."""

    def __init__(self, consumer_factory: Callable[[], KafkaConsumer]):
        self._new_consumer = consumer_factory
        self._consumer: KafkaConsumer | None = None
        self._lock = threading.Lock()
        self._waiting: dict[TopicPartition, list[Any]] = {}
        self._undecodable: dict[TopicPartition, UndecodableBatch] = {}
        self._next: dict[TopicPartition, int] = {}  # what the caller will ask for next

    def fetch(self, tp: TopicPartition, offset: int, wait_ms: int) -> Fetched:
        """``tp``'s records from ``offset`` on: those already fetched, else those of one poll
        of at most ``wait_ms`` (it returns as soon as any partition has records; it does not
        wait at all while another partition's records wait here to be taken)."""
        with self._lock:
            consumer = self._positioned(tp, offset)
            if not self._waiting.get(tp) and tp not in self._undecodable:
                self._poll(consumer, 0 if any(self._waiting.values()) else wait_ms)
                consumer = self._assigned()  # a new one if the poll failed
            undecodable = self._undecodable.pop(tp, None)
            records = self._waiting.pop(tp, [])
            next_offset = _after(offset, undecodable, records, _position(consumer, tp))
            self._next[tp] = next_offset
            return Fetched(records, next_offset, undecodable)

    @contextlib.contextmanager
    def consumer(self) -> Iterator[KafkaConsumer]:
        """The consumer, for a call of its own (such as reading the group's commits)."""
        with self._lock:
            yield self._assigned()

    def close(self) -> None:
        with self._lock:
            self._close_consumer()

    def _close_consumer(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _assigned(self) -> KafkaConsumer:
        """The consumer; a new one is assigned every known partition where it goes on."""
        if self._consumer is None:
            self._consumer = self._new_consumer()
            if self._next:
                self._consumer.assign(list(self._next))
                for tp in self._next:
                    self._consumer.seek(tp, self._fetch_from(tp))
        return self._consumer

    def _fetch_from(self, tp: TopicPartition) -> int:
        """Where the consumer goes on with ``tp``: after what waits here for it (records, or a
        range that could not be decoded), else at its caller's next offset."""
        waiting = self._waiting.get(tp)
        if waiting:
            return waiting[-1].offset + 1
        if tp in self._undecodable:
            return self._undecodable[tp].end
        return self._next[tp]

    def _positioned(self, tp: TopicPartition, offset: int) -> KafkaConsumer:
        """The consumer, assigned ``tp`` and about to hand out ``offset`` for it.

        The next offset is tracked here rather than asked of the consumer: kafka-python's
        ``position()`` can wait for a freshly assigned partition whose metadata it has not
        loaded (2.2 spun there forever).
        """
        consumer = self._assigned()
        if tp not in self._next:
            consumer.assign([*self._next, tp])  # kafka-python keeps the others' positions
        if self._next.get(tp) != offset:
            consumer.seek(tp, offset)
            self._waiting.pop(tp, None)
            self._undecodable.pop(tp, None)
            self._next[tp] = offset
        return consumer

    def _poll(self, consumer: KafkaConsumer, wait_ms: int) -> None:
        """One poll, partitions with records waiting here paused; what it returns waits here."""
        waiting = [tp for tp, records in self._waiting.items() if records]
        fetching = [tp for tp in self._next if tp not in waiting]
        consumer.pause(*waiting)
        consumer.resume(*fetching)
        try:
            fetched = consumer.poll(timeout_ms=wait_ms)  # at most its max_poll_records
        except Exception as error:
            if not is_undecodable(error):
                raise
            self._after_undecodable(error, fetching)
            return
        for tp, records in fetched.items():
            self._waiting.setdefault(tp, []).extend(records)

    def _after_undecodable(self, error: Exception, fetching: list[TopicPartition]) -> None:
        """Replaces the consumer, and finds which of the partitions ``fetching`` holds what
        could not be decoded, and where; the others go on from where they were."""
        _LOGGER.warning('a poll could not decode what it fetched (%r); looking for where', error)
        self._close_consumer()
        for tp in fetching:
            if tp in self._undecodable or self._waiting.get(tp):
                continue
            batch = _Probe(self._new_consumer, tp).undecodable_from(self._next[tp])
            if batch is not None:
                _LOGGER.warning('skipping what cannot be decoded: %s', batch)
                self._undecodable[tp] = batch
        self._assigned()


class _Probe:
    """Reads one partition alone, with consumers of its own (a consumer that failed to decode
    is not used again), to tell whether a fetch from an offset can be decoded."""

    def __init__(self, consumer_factory: Callable[[], KafkaConsumer], tp: TopicPartition):
        self._new_consumer = consumer_factory
        self._tp = tp

    def undecodable_from(self, offset: int) -> Optional[UndecodableBatch]:
        """The range from ``offset`` that cannot be decoded, or None if a fetch from ``offset``
        decodes (or brings nothing within PROBE_TIMEOUT_S)."""
        log_end = self._end_offset()
        error = self._error_at(offset, log_end)
        if error is None:
            return None
        end = self._first_decodable_after(offset, log_end)
        return UndecodableBatch(self._tp.topic, self._tp.partition, offset, end, _named(error))

    def _first_decodable_after(self, bad: int, log_end: int) -> int:
        """The first offset after ``bad`` from which a fetch decodes: steps that double from
        ``bad``, then halves between the last failing and the first decoding one."""
        step, good = 1, None
        while good is None:
            candidate = bad + step
            if candidate >= log_end:
                good = max(log_end, bad + 1)
            elif self._error_at(candidate, log_end) is None:
                good = candidate
            else:
                bad, step = candidate, step * 2
        while good - bad > 1:
            middle = (bad + good) // 2
            if self._error_at(middle, log_end) is None:
                good = middle
            else:
                bad = middle
        return good

    def _error_at(self, offset: int, log_end: int) -> Optional[Exception]:
        """The decoding error of a fetch from ``offset``, or None once it returned records or
        reached ``log_end`` (only offsets without a record for it: markers, aborted records),
        or nothing came within PROBE_TIMEOUT_S."""
        if offset >= log_end:
            return None
        consumer = self._new_consumer()
        try:
            consumer.assign([self._tp])
            consumer.seek(self._tp, offset)
            deadline = time.monotonic() + PROBE_TIMEOUT_S
            while time.monotonic() < deadline and (_position(consumer, self._tp) or 0) < log_end:
                try:
                    if consumer.poll(timeout_ms=200).get(self._tp):
                        return None
                except Exception as error:
                    if not is_undecodable(error):
                        raise
                    return error
            return None
        finally:
            consumer.close()

    def _end_offset(self) -> int:
        consumer = self._new_consumer()
        try:
            return consumer.end_offsets([self._tp])[self._tp]
        finally:
            consumer.close()


def _named(error: Exception) -> str:
    """The error's text, with its class name (kafka-python's errors carry it already)."""
    name = type(error).__name__
    return str(error) if name in str(error) else f'{name}: {error}'


def _position(consumer: KafkaConsumer, tp: TopicPartition) -> Optional[int]:
    """Where the consumer's next fetch of ``tp`` starts, if it knows without asking the broker."""
    try:
        return consumer.position(tp, timeout_ms=0)
    except (AssertionError, KafkaError):
        return None


def _after(
    offset: int,
    undecodable: Optional[UndecodableBatch],
    records: list[Any],
    position: Optional[int],
) -> int:
    """Where a partition's next call starts: past what is handed out, and past the offsets the
    consumer skipped after it because they hold no record for it (``position``)."""
    next_offset = offset
    if undecodable is not None:
        next_offset = undecodable.end
    if records:
        next_offset = records[-1].offset + 1
    return max(next_offset, position or 0)


_FETCHERS: dict[str, tuple[SharedFetcher, int]] = {}
_FETCHERS_LOCK = threading.Lock()


def acquire(key: str, consumer_factory: Callable[[], KafkaConsumer]) -> SharedFetcher:
    """The process's fetcher for ``key`` (a run of the read), made on first use; every
    ``acquire`` is matched by a ``release``."""
    with _FETCHERS_LOCK:
        fetcher, users = _FETCHERS.get(key) or (SharedFetcher(consumer_factory), 0)
        _FETCHERS[key] = (fetcher, users + 1)
        return fetcher


def release(key: str) -> None:
    """One user less; the last one closes the consumer."""
    with _FETCHERS_LOCK:
        fetcher, users = _FETCHERS.pop(key)
        if users > 1:
            _FETCHERS[key] = (fetcher, users - 1)
            return
    fetcher.close()
