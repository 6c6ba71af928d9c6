"""The bench's own consumer: when each focus event was produced, and when its output arrived.

One kafka-python consumer, outside any consumer group, reads the focus topic and a system's
output topic from the beginning, in a thread:

- a focus-topic record gives the focus event's produce time, its Kafka ``CreateTime`` (set
  by the producer), and its customer and department, under its id ``topic/partition/offset``;
  only valid focus events (those the pipeline's parser accepts) are measured;
- an output record names its focus event by the ``focus_event_id`` header (passthrough) or
  JSON field (prediction results); the consumer's wall clock when the record is returned by
  ``poll`` is the arrival time; only the first output of each focus event is kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from bench.references import FOCUS_ID_HEADER, focus_event_id
from transforms.events import FOCUS_EVENT_TYPE, InvalidEvent, parse_store_event
from transforms.kafka.python_io import kafka_record

POLL_TIMEOUT_MS = 50
READY_TIMEOUT_S = 30.0


@dataclass
class Observations:
    """What the probe saw: produce times of valid focus events, first arrivals of outputs."""

    produced_s: dict[str, float] = field(default_factory=dict)  # focus event id -> CreateTime
    focus_of: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> customer, department
    first_arrival_s: dict[str, float] = field(default_factory=dict)  # focus event id -> wall clock
    outputs: int = 0  # output messages, duplicates included
    with_output: int = 0  # valid focus events whose output arrived

    def latencies_s(self, produced_after_s: float = 0.0) -> list[float]:
        """Produce-to-first-output latencies of the valid focus events produced after a time."""
        return [
            arrived - self.produced_s[event_id]
            for event_id, arrived in self.first_arrival_s.items()
            if self.produced_s.get(event_id, -1.0) >= produced_after_s
        ]

    def last_arrival_s(self) -> float | None:
        """When the last valid focus event got its first output."""
        return max(self._valid_arrivals_s(), default=None)

    def first_arrival_s_overall(self) -> float | None:
        """When the first output of any valid focus event arrived."""
        return min(self._valid_arrivals_s(), default=None)

    def _valid_arrivals_s(self) -> list[float]:
        return [t for event_id, t in self.first_arrival_s.items() if event_id in self.produced_s]

    def first_produced_s(self) -> float | None:
        """When the first valid focus event was produced."""
        return min(self.produced_s.values(), default=None)

    def missing_outputs(self, due: Callable[[int, int], bool]) -> int:
        """Valid focus events whose output is due (``due(customer_id, department_id)``) but never came."""
        return sum(
            1
            for event_id, (customer_id, department_id) in self.focus_of.items()
            if event_id not in self.first_arrival_s and due(customer_id, department_id)
        )

    def add_focus(self, record: ConsumerRecord) -> None:
        """Record a focus-topic record's produce time, if it is a valid focus event."""
        raw = kafka_record(record)
        try:
            focus = parse_store_event(raw, FOCUS_EVENT_TYPE)
        except InvalidEvent:
            return
        event_id = focus_event_id(record)
        self.produced_s[event_id] = record.timestamp / 1000
        self.focus_of[event_id] = (focus.customer_id, focus.department_id)
        self.with_output += event_id in self.first_arrival_s

    def add_output(self, record: ConsumerRecord, arrived_s: float) -> None:
        """Record an output record's arrival."""
        self.outputs += 1
        event_id = _named_focus_event(record)
        if event_id not in self.first_arrival_s:
            self.first_arrival_s[event_id] = arrived_s
            self.with_output += event_id in self.produced_s


def _named_focus_event(record: ConsumerRecord) -> str:
    """The focus event an output record is for."""
    for name, value in record.headers or ():
        if name == FOCUS_ID_HEADER:
            return value.decode()
    return json.loads(record.value)['focus_event_id']


class OutputProbe:
    """Runs the consumer in a thread between ``__enter__`` and ``__exit__``."""

    def __init__(self, bootstrap_servers: str, focus_topic: str, output_topic: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._focus_topic = focus_topic
        self._output_topic = output_topic
        self._observations = Observations()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name='bench-probe', daemon=True)

    def __enter__(self) -> OutputProbe:
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT_S):
            raise RuntimeError(
                f'the probe consumer did not start within {READY_TIMEOUT_S:g} s: {self._failure!r}'
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def with_output(self) -> int:
        """Valid focus events whose output has arrived so far."""
        self._raise_if_failed()
        with self._lock:
            return self._observations.with_output

    def snapshot(self) -> Observations:
        """A copy of everything observed so far."""
        self._raise_if_failed()
        with self._lock:
            seen = self._observations
            return Observations(
                dict(seen.produced_s),
                dict(seen.focus_of),
                dict(seen.first_arrival_s),
                seen.outputs,
                seen.with_output,
            )

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise RuntimeError('the probe consumer failed') from self._failure

    def _run(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=self._bootstrap_servers.split(','),
            group_id=None,
            client_id='bench-probe',
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        try:
            consumer.assign(
                [
                    TopicPartition(topic, partition)
                    for topic in (self._focus_topic, self._output_topic)
                    for partition in sorted(consumer.partitions_for_topic(topic) or ())
                ]
            )
            consumer.seek_to_beginning()
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
                self._record(batch, time.time())
                self._ready.set()
        except BaseException as error:  # noqa: BLE001 (surfaced to the caller by _raise_if_failed)
            self._failure = error
        finally:
            consumer.close()

    def _record(self, batch: dict[TopicPartition, list[ConsumerRecord]], arrived_s: float) -> None:
        with self._lock:
            for partition, records in batch.items():
                for record in records:
                    if partition.topic == self._focus_topic:
                        self._observations.add_focus(record)
                    else:
                        self._observations.add_output(record, arrived_s)
