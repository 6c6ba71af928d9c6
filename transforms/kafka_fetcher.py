"""One Kafka consumer per process for every partition the read handles (transforms.kafka_python).

In:  calls ``fetch(tp, offset, wait_ms)`` from the read's DoFn instances, on any thread.
Out: the records of ``tp`` from ``offset`` that have arrived, at most ``wait_ms`` after the call
     (sooner as soon as any partition has records).
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
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

from kafka import KafkaConsumer, TopicPartition


class SharedFetcher:
    """The process's consumer for one run of the read."""

    def __init__(self, consumer_factory: Callable[[], KafkaConsumer]):
        self._new_consumer = consumer_factory
        self._consumer: KafkaConsumer | None = None
        self._lock = threading.Lock()
        self._waiting: dict[TopicPartition, list[Any]] = {}
        self._next: dict[TopicPartition, int] = {}  # what the caller will ask for next

    def fetch(self, tp: TopicPartition, offset: int, wait_ms: int) -> list[Any]:
        """``tp``'s records from ``offset`` on: those already fetched, else those of one poll
        of at most ``wait_ms`` (it returns as soon as any partition has records; it does not
        wait at all while another partition's records wait here to be taken)."""
        with self._lock:
            consumer = self._positioned(tp, offset)
            if not self._waiting.get(tp):
                self._poll(consumer, 0 if any(self._waiting.values()) else wait_ms)
            records = self._waiting.pop(tp, [])
            if records:
                self._next[tp] = records[-1].offset + 1
            return records

    @contextlib.contextmanager
    def consumer(self) -> Iterator[KafkaConsumer]:
        """The consumer, for a call of its own (such as reading the group's commits)."""
        with self._lock:
            yield self._assigned()

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    def _assigned(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = self._new_consumer()
        return self._consumer

    def _positioned(self, tp: TopicPartition, offset: int) -> KafkaConsumer:
        """The consumer, assigned ``tp`` and about to hand out ``offset`` for it.

        The next offset is tracked here rather than asked of the consumer: kafka-python 2.2's
        ``position()`` can spin forever on a freshly assigned partition whose metadata it has
        not loaded.
        """
        consumer = self._assigned()
        if tp not in self._next:
            consumer.assign([*self._next, tp])  # kafka-python keeps the others' positions
        if self._next.get(tp) != offset:
            consumer.seek(tp, offset)
            self._waiting.pop(tp, None)
            self._next[tp] = offset
        return consumer

    def _poll(self, consumer: KafkaConsumer, wait_ms: int) -> None:
        """One poll, partitions with records waiting here paused; what it returns waits here."""
        waiting = [tp for tp, records in self._waiting.items() if records]
        consumer.pause(*waiting)
        consumer.resume(*(tp for tp in self._next if tp not in waiting))
        fetched = consumer.poll(timeout_ms=wait_ms)  # at most its max_poll_records
        for tp, records in fetched.items():
            self._waiting.setdefault(tp, []).extend(records)


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
