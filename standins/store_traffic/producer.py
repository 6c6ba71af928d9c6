"""Sending the stream to Kafka: :func:`produce`, its settings and the summary of a run.

:func:`produce` checks that both topics exist, then sends :class:`TrafficConfig`'s stream
(:mod:`.stream`, encoded by :mod:`.encoding`) with one producer, paced by the valid focus
events unless as fast as possible, until the stream, the duration or a ``stop`` event ends
it; it returns a :class:`TrafficSummary` once the producer is flushed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from standins.central.generate import DEFAULT_CUSTOMERS, DEPARTMENTS
from standins.store_traffic.encoding import encode
from standins.store_traffic.stream import (
    DEFAULT_CONCURRENT_VISITS,
    DEFAULT_EARLY_FOCUS_SHARE,
    DEFAULT_MALFORMED_SHARE,
    DEFAULT_SEED,
    DEFAULT_UNKNOWN_CUSTOMER_SHARE,
    ENTRY,
    FOCUS,
    StoreTraffic,
    TrafficEvent,
)

log = logging.getLogger(__name__)

DEFAULT_RATE = 10.0
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_ENTRY_TOPIC = "store.entry"
DEFAULT_FOCUS_TOPIC = "store.focus"
METADATA_TIMEOUT_S = 10.0
FLUSH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TrafficConfig:
    """What :func:`produce` sends where, and how fast.

    ``rate`` is valid focus events per second (ignored with ``as_fast_as_possible``); the run
    ends after ``duration_s`` seconds or ``visits`` complete visits, whichever comes first,
    or when :func:`produce`'s ``stop`` event is set; with neither limit it runs until stopped.
    """

    bootstrap_servers: str = DEFAULT_BOOTSTRAP_SERVERS
    entry_topic: str = DEFAULT_ENTRY_TOPIC
    focus_topic: str = DEFAULT_FOCUS_TOPIC
    rate: float = DEFAULT_RATE
    duration_s: float | None = None
    visits: int | None = None
    as_fast_as_possible: bool = False
    customers: int = DEFAULT_CUSTOMERS
    departments: int = len(DEPARTMENTS)
    seed: int = DEFAULT_SEED
    concurrent_visits: int = DEFAULT_CONCURRENT_VISITS
    early_focus_share: float = DEFAULT_EARLY_FOCUS_SHARE
    unknown_customer_share: float = DEFAULT_UNKNOWN_CUSTOMER_SHARE
    malformed_share: float = DEFAULT_MALFORMED_SHARE

    def traffic(self) -> StoreTraffic:
        """The stream these settings describe."""
        return StoreTraffic(
            customers=self.customers,
            departments=self.departments,
            seed=self.seed,
            concurrent_visits=self.concurrent_visits,
            early_focus_share=self.early_focus_share,
            unknown_customer_share=self.unknown_customer_share,
            malformed_share=self.malformed_share,
        )


@dataclass
class TrafficSummary:
    """What :func:`produce` sent (counts are messages handed to the producer)."""

    visits: int = 0  # visits begun (visits are numbered in the order they begin)
    entries: int = 0
    focus_events: int = 0  # valid ones
    focus_before_entry: int = 0
    focus_unknown_customers: int = 0
    malformed: int = 0
    send_errors: int = 0
    elapsed_s: float = 0.0  # from the first send to the end of the final flush
    stopped_by: str = "end of stream"

    @property
    def messages(self) -> int:
        """All messages sent: entries, valid focus events and malformed messages."""
        return self.entries + self.focus_events + self.malformed

    @property
    def focus_rate(self) -> float:
        """Valid focus events per second."""
        return self.focus_events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def message_rate(self) -> float:
        """Messages per second."""
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def count(self, event: TrafficEvent, customers: int) -> None:
        """Count ``event`` as sent."""
        self.visits = max(self.visits, event.visit + 1)
        if event.malformed is not None:
            self.malformed += 1
        elif event.topic_kind == ENTRY:
            self.entries += 1
        else:
            self.focus_events += 1
            self.focus_before_entry += event.before_entry
            self.focus_unknown_customers += event.customer_id > customers

    def describe(self) -> str:
        """A one-paragraph human summary."""
        return (
            f"sent {self.entries} entries, {self.focus_events} focus events "
            f"({self.focus_before_entry} before their entry, {self.focus_unknown_customers} of unknown customers) "
            f"and {self.malformed} malformed messages over {self.visits} visits; {self.send_errors} send errors\n"
            f"elapsed {self.elapsed_s:.1f} s: {self.focus_rate:,.1f} focus events/s, "
            f"{self.message_rate:,.1f} messages/s; stopped by {self.stopped_by}"
        )


class _ErrorCounter:
    """Counts failed sends (callbacks run on the producer's I/O thread); logs the first one."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, error: BaseException) -> None:
        with self._lock:
            self.count += 1
            first = self.count == 1
        if first:
            log.error("sending failed: %s (further failures are only counted)", error)


def produce(config: TrafficConfig, stop: threading.Event | None = None) -> TrafficSummary:
    """Send the traffic ``config`` describes; return what was sent once all is flushed.

    Args:
        config: the traffic, the Kafka topics and the pacing.
        stop: set it (from another thread or a signal handler) to end the run early.

    Raises:
        KafkaError: no broker answers, or a topic does not exist.
    """
    stop = stop if stop is not None else threading.Event()
    topics = {ENTRY: config.entry_topic, FOCUS: config.focus_topic}
    _check_topics(config.bootstrap_servers, topics.values())
    producer = _producer(config.bootstrap_servers)
    errors = _ErrorCounter()
    summary = TrafficSummary()
    began = time.monotonic()
    try:
        deadline = began + config.duration_s if config.duration_s is not None else math.inf
        summary.stopped_by = _send_all(
            producer, topics, config, summary, errors, began, deadline, stop
        )
    finally:
        producer.flush(FLUSH_TIMEOUT_S)
        producer.close(FLUSH_TIMEOUT_S)
        summary.elapsed_s = time.monotonic() - began
        summary.send_errors = errors.count
    return summary


def _send_all(
    producer: KafkaProducer,
    topics: dict[str, str],
    config: TrafficConfig,
    summary: TrafficSummary,
    on_error: _ErrorCounter,
    began: float,
    deadline: float,
    stop: threading.Event,
) -> str:
    """Send the stream, paced unless as fast as possible; return why sending ended."""
    interval = 0.0 if config.as_fast_as_possible else 1.0 / config.rate
    for event in config.traffic().events(config.visits):
        if event.is_valid_focus and interval:
            due = began + summary.focus_events * interval
            if stop.wait(max(0.0, min(due, deadline) - time.monotonic())):
                return "signal"
        if stop.is_set():
            return "signal"
        if time.monotonic() >= deadline:
            return "duration"
        key, value = encode(event, datetime.now(timezone.utc))
        producer.send(topics[event.topic_kind], key=key, value=value).add_errback(on_error)
        summary.count(event, config.customers)
    return "visits" if config.visits is not None else "end of stream"


def _producer(bootstrap_servers: str) -> KafkaProducer:
    """A producer as the stores would use: leader acks, a short linger."""
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="standins-store-traffic",
        acks=1,
        linger_ms=5,
        max_block_ms=int(METADATA_TIMEOUT_S * 1000),
    )


def _check_topics(bootstrap_servers: str, topics: Iterable[str]) -> None:
    """Fail early, with a hint, if a topic does not exist (the broker does not auto-create)."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="standins-store-traffic",
        request_timeout_ms=int(METADATA_TIMEOUT_S * 1000),
    )
    try:
        described = admin.describe_topics(list(topics))
    finally:
        admin.close()
    missing = sorted(topic["topic"] for topic in described if topic["error_code"] != 0)
    if missing:
        names = " ".join(missing)
        raise KafkaError(
            f"missing topics: {names}; create them with `python -m standins.kafka topics {names}`"
        )
