"""Store traffic: a deterministic stream of customer entry and focus events, sent to Kafka.

It stands in for the stores' event sources (a demo stream, and a load generator); it is not
part of the product.

    python -m standins.store_traffic [--rate R] [--duration S] [--visits N] [--as-fast-as-possible]
                                     [--entry-topic T] [--focus-topic T] [--bootstrap-servers HOST:PORT]
                                     [--customers N] [--seed S] [--early-focus-share F]
                                     [--unknown-customer-share F] [--malformed-share F]

A *visit* is a customer entering (an entry event) and then focusing on departments 1..5
(1 to 10 focus events). ``--concurrent-visits`` visits are in progress at any time, so their
events interleave and each visit's focus events spread over it. Some of the traffic is
deliberately faulty, each as a configurable share of the valid focus events:

- focus events sent before their visit's entry event (the entry follows a few events later);
- visits of unknown customers, whose ids lie above ``--customers`` (their entry is still sent);
- malformed messages on the focus topic, each after a valid focus event, cycling through
  :data:`MALFORMED_KINDS`.

The stream depends only on the settings and the seed; each message is stamped with the
wall-clock time it is sent at, so the pipeline's event-time logic sees the current time.
``--rate`` paces the valid focus events (entries and malformed messages go out alongside
them); the run stops after ``--duration`` seconds or ``--visits`` visits, whichever comes
first, or on Ctrl-C / SIGTERM, and then flushes the producer and prints a summary.

From Python (e.g. a benchmark)::

    summary = produce(TrafficConfig(entry_topic="demo.entry", focus_topic="demo.focus", visits=1000))
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from standins.central.generate import DEFAULT_CUSTOMERS, DEPARTMENTS
from standins.cli import positive_float

log = logging.getLogger(__name__)

ENTRY = "entry"
FOCUS = "focus"
ENTRY_EVENT_TYPE = "customer entry"
FOCUS_EVENT_TYPE = "customer focus"
MALFORMED_KINDS = (
    "not_utf8",
    "not_json",
    "missing_payload",
    "unknown_event_type",
    "entry_on_focus_topic",
    "customer_id_string",
    "absurd_customer_id",
    "bad_timestamp",
)
ABSURD_CUSTOMER_ID = 10**15
MAX_FOCUS_PER_VISIT = 10

DEFAULT_SEED = 7
DEFAULT_RATE = 10.0
DEFAULT_CONCURRENT_VISITS = 20
DEFAULT_EARLY_FOCUS_SHARE = 0.05
DEFAULT_UNKNOWN_CUSTOMER_SHARE = 0.02
DEFAULT_MALFORMED_SHARE = 0.01
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_ENTRY_TOPIC = "store.entry"
DEFAULT_FOCUS_TOPIC = "store.focus"
METADATA_TIMEOUT_S = 10.0
FLUSH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TrafficEvent:
    """One message of the stream, before it is stamped and encoded (see :func:`encode`).

    Attributes:
        topic_kind: ``ENTRY`` or ``FOCUS``, the topic the message goes to.
        customer_id: the visit's customer; the message key.
        payload: the message's payload (for a malformed message, that of the focus event it
            is derived from).
        visit: the visit's sequence number in the stream, from 0.
        malformed: one of :data:`MALFORMED_KINDS`, or None for a valid event.
        before_entry: a valid focus event sent before its visit's entry event.
    """

    topic_kind: str
    customer_id: int
    payload: dict[str, Any]
    visit: int
    malformed: str | None = None
    before_entry: bool = False

    @property
    def is_valid_focus(self) -> bool:
        """Whether this is a well-formed focus event (the events ``--rate`` paces)."""
        return self.topic_kind == FOCUS and self.malformed is None


@dataclass
class _Visit:
    """A visit in progress: its customer, how many focus events it makes and has made."""

    number: int
    customer_id: int
    focus_count: int
    focus_before_entry: int  # the entry follows this many focus events (0: it comes first)
    focus_sent: int = 0


class StoreTraffic:
    """A deterministic, time-ordered stream of store events: the same settings, the same stream."""

    def __init__(
        self,
        *,
        customers: int = DEFAULT_CUSTOMERS,
        departments: int = len(DEPARTMENTS),
        seed: int = DEFAULT_SEED,
        concurrent_visits: int = DEFAULT_CONCURRENT_VISITS,
        early_focus_share: float = DEFAULT_EARLY_FOCUS_SHARE,
        unknown_customer_share: float = DEFAULT_UNKNOWN_CUSTOMER_SHARE,
        malformed_share: float = DEFAULT_MALFORMED_SHARE,
    ) -> None:
        """Describe the traffic; nothing is drawn until :meth:`events`.

        Args:
            customers: known customers are 1..customers; unknown ones customers+1..2*customers.
            departments: focus events are at departments 1..departments.
            seed: seed of the stream's ``random.Random``.
            concurrent_visits: visits in progress at once (their events interleave).
            early_focus_share: expected share of valid focus events sent before their entry.
            unknown_customer_share: share of visits (hence of focus events) by unknown customers.
            malformed_share: malformed messages per valid focus event.

        Raises:
            ValueError: a count is below 1 or a share is outside 0..1.
        """
        for name, count in (("customers", customers), ("departments", departments)):
            if count < 1:
                raise ValueError(f"{name} must be at least 1, not {count}")
        if concurrent_visits < 1:
            raise ValueError(f"concurrent_visits must be at least 1, not {concurrent_visits}")
        shares = {
            "early_focus_share": early_focus_share,
            "unknown_customer_share": unknown_customer_share,
            "malformed_share": malformed_share,
        }
        for name, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be within 0..1, not {share}")
        self.customers = customers
        self.departments = departments
        self.seed = seed
        self.concurrent_visits = concurrent_visits
        self.early_focus_share = early_focus_share
        self.unknown_customer_share = unknown_customer_share
        self.malformed_share = malformed_share

    def events(self, visits: int | None = None) -> Iterator[TrafficEvent]:
        """The stream: ``visits`` complete visits, or an endless stream if None."""
        rng = random.Random(self.seed)
        active: list[_Visit] = []
        opened = malformed = 0
        while True:
            while len(active) < self.concurrent_visits and (visits is None or opened < visits):
                visit = self._open_visit(rng, opened, {v.customer_id for v in active})
                opened += 1
                active.append(visit)
                if visit.focus_before_entry == 0:
                    yield _entry(visit)
            if not active:
                return
            visit = active[rng.randrange(len(active))]
            focus = self._focus(rng, visit)
            visit.focus_sent += 1
            yield focus
            if visit.focus_sent == visit.focus_before_entry:
                yield _entry(visit)
            if rng.random() < self.malformed_share:
                yield _malformed(focus, MALFORMED_KINDS[malformed % len(MALFORMED_KINDS)])
                malformed += 1
            if visit.focus_sent == visit.focus_count:
                active.remove(visit)

    def _open_visit(self, rng: random.Random, number: int, busy: set[int]) -> _Visit:
        """A new visit, by a customer not already in the store if one is found in a few draws."""
        unknown = rng.random() < self.unknown_customer_share
        low = self.customers + 1 if unknown else 1
        customer_id = rng.randint(low, low + self.customers - 1)
        for _ in range(10):
            if customer_id not in busy:
                break
            customer_id = rng.randint(low, low + self.customers - 1)
        focus_count = rng.randint(1, MAX_FOCUS_PER_VISIT)
        # Each focus event is "early" with the configured probability; the entry follows
        # that many focus events, so the expected early share is exactly the configured one.
        early = sum(rng.random() < self.early_focus_share for _ in range(focus_count))
        return _Visit(number, customer_id, focus_count, early)

    def _focus(self, rng: random.Random, visit: _Visit) -> TrafficEvent:
        """The visit's next focus event, at a random department."""
        payload = {
            "customer_id": visit.customer_id,
            "department_id": rng.randint(1, self.departments),
        }
        before_entry = visit.focus_sent < visit.focus_before_entry
        return TrafficEvent(
            FOCUS, visit.customer_id, payload, visit.number, before_entry=before_entry
        )


def _entry(visit: _Visit) -> TrafficEvent:
    """The visit's entry event."""
    return TrafficEvent(ENTRY, visit.customer_id, {"customer_id": visit.customer_id}, visit.number)


def _malformed(focus: TrafficEvent, kind: str) -> TrafficEvent:
    """A malformed message of ``kind`` derived from the valid ``focus`` event, for the focus topic."""
    return TrafficEvent(FOCUS, focus.customer_id, dict(focus.payload), focus.visit, malformed=kind)


def format_timestamp(moment: datetime) -> str:
    """``moment`` (aware) in UTC as the stores write it: ``2021-03-18T08:29:02.160Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def encode(event: TrafficEvent, moment: datetime) -> tuple[bytes, bytes]:
    """The Kafka key and value of ``event`` stamped with ``moment``."""
    key = str(event.customer_id).encode()
    timestamp = format_timestamp(moment)
    if event.malformed is not None:
        return key, _MALFORMED_VALUES[event.malformed](event, timestamp)
    event_type = ENTRY_EVENT_TYPE if event.topic_kind == ENTRY else FOCUS_EVENT_TYPE
    return key, _json(
        {"event_type": event_type, "event_timestamp": timestamp, "payload": event.payload}
    )


def _json(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _focus_message(event: TrafficEvent, timestamp: str, **changes: Any) -> bytes:
    """The focus message of ``event`` with some top-level fields or payload fields replaced."""
    message: dict[str, Any] = {"event_type": FOCUS_EVENT_TYPE, "event_timestamp": timestamp}
    payload = {**event.payload, **changes.pop("payload", {})}
    message.update(changes)
    message["payload"] = payload
    return _json(message)


_MALFORMED_VALUES: dict[str, Callable[[TrafficEvent, str], bytes]] = {
    # Valid JSON but for one byte that is no UTF-8 (a lone continuation byte in a string).
    "not_utf8": lambda event, ts: _focus_message(event, ts).replace(b'"payload"', b'"pay\x80load"'),
    # A message cut short.
    "not_json": lambda event, ts: _focus_message(event, ts)[:-7],
    "missing_payload": lambda event, ts: _json(
        {"event_type": FOCUS_EVENT_TYPE, "event_timestamp": ts}
    ),
    "unknown_event_type": lambda event, ts: _focus_message(event, ts, event_type="customer exit"),
    "entry_on_focus_topic": lambda event, ts: _json(
        {
            "event_type": ENTRY_EVENT_TYPE,
            "event_timestamp": ts,
            "payload": {"customer_id": event.customer_id},
        }
    ),
    "customer_id_string": lambda event, ts: _focus_message(
        event, ts, payload={"customer_id": str(event.customer_id)}
    ),
    "absurd_customer_id": lambda event, ts: _focus_message(
        event, ts, payload={"customer_id": ABSURD_CUSTOMER_ID}
    ),
    # ISO-8601 in shape, but 30 February, 25 o'clock.
    "bad_timestamp": lambda event, ts: _focus_message(
        event, ts, event_timestamp="2021-02-30T25:61:00.000Z"
    ),
}
assert set(_MALFORMED_VALUES) == set(MALFORMED_KINDS)


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


def _parser() -> argparse.ArgumentParser:
    """The argument parser; Kafka settings default to the pipeline's environment variables."""
    parser = argparse.ArgumentParser(
        prog="python -m standins.store_traffic",
        description="Send store traffic (entry and focus events) to Kafka.",
    )
    env = os.environ.get
    kafka = parser.add_argument_group("Kafka")
    kafka.add_argument(
        "--bootstrap-servers",
        default=env("BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP_SERVERS,
        help=f"host:port[,...] (default: $BOOTSTRAP_SERVERS or {DEFAULT_BOOTSTRAP_SERVERS})",
    )
    kafka.add_argument(
        "--entry-topic",
        default=env("ENTRY_EVENT_TOPIC_NAME") or DEFAULT_ENTRY_TOPIC,
        help=f"(default: $ENTRY_EVENT_TOPIC_NAME or {DEFAULT_ENTRY_TOPIC})",
    )
    kafka.add_argument(
        "--focus-topic",
        default=env("FOCUS_EVENT_TOPIC_NAME") or DEFAULT_FOCUS_TOPIC,
        help=f"(default: $FOCUS_EVENT_TOPIC_NAME or {DEFAULT_FOCUS_TOPIC})",
    )
    pace = parser.add_argument_group("pace and length")
    pace.add_argument(
        "--rate", type=positive_float, default=DEFAULT_RATE,
        help="valid focus events per second (default: %(default)s)",
    )  # fmt: skip
    pace.add_argument(
        "--as-fast-as-possible", action="store_true", help="no pacing (ignores --rate)"
    )
    pace.add_argument(
        "--duration", type=positive_float, default=None, metavar="S", help="stop after S seconds"
    )
    pace.add_argument(
        "--visits",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop after N complete visits",
    )
    shape = parser.add_argument_group("traffic")
    shape.add_argument(
        "--customers", type=_positive_int, default=DEFAULT_CUSTOMERS, metavar="N",
        help="known customers are 1..N, unknown ones N+1..2N (default: %(default)s)",
    )  # fmt: skip
    shape.add_argument(
        "--departments", type=_positive_int, default=len(DEPARTMENTS), metavar="N",
        help="focus events are at departments 1..N (default: %(default)s)",
    )  # fmt: skip
    shape.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the stream (default: %(default)s)"
    )
    shape.add_argument(
        "--concurrent-visits", type=_positive_int, default=DEFAULT_CONCURRENT_VISITS, metavar="N",
        help="visits in progress at once, their events interleaved (default: %(default)s)",
    )  # fmt: skip
    shape.add_argument(
        "--early-focus-share", type=_share, default=DEFAULT_EARLY_FOCUS_SHARE, metavar="F",
        help="share of focus events sent before their entry (default: %(default)s)",
    )  # fmt: skip
    shape.add_argument(
        "--unknown-customer-share", type=_share, default=DEFAULT_UNKNOWN_CUSTOMER_SHARE, metavar="F",
        help="share of visits by unknown customers (default: %(default)s)",
    )  # fmt: skip
    shape.add_argument(
        "--malformed-share", type=_share, default=DEFAULT_MALFORMED_SHARE, metavar="F",
        help="malformed messages per focus event (default: %(default)s)",
    )  # fmt: skip
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1: {text}")
    return value


def _config(args: argparse.Namespace) -> TrafficConfig:
    return TrafficConfig(
        bootstrap_servers=args.bootstrap_servers,
        entry_topic=args.entry_topic,
        focus_topic=args.focus_topic,
        rate=args.rate,
        duration_s=args.duration,
        visits=args.visits,
        as_fast_as_possible=args.as_fast_as_possible,
        customers=args.customers,
        departments=args.departments,
        seed=args.seed,
        concurrent_visits=args.concurrent_visits,
        early_focus_share=args.early_focus_share,
        unknown_customer_share=args.unknown_customer_share,
        malformed_share=args.malformed_share,
    )


def _stop_handler(stop: threading.Event) -> Callable[[int, Any], None]:
    """A signal handler that asks the run to stop; a second signal interrupts at once."""

    def handle(_signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    return handle


def main(argv: Sequence[str] | None = None) -> int:
    """Send traffic until done or stopped; print the summary. Exit code 1 if a send failed."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # kafka-python's connection chatter
    config = _config(args)
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, _stop_handler(stop)) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    pace = (
        "as fast as possible" if config.as_fast_as_possible else f"{config.rate:g} focus events/s"
    )
    print(
        f"sending to {config.entry_topic} and {config.focus_topic} on {config.bootstrap_servers}, {pace}",
        flush=True,
    )
    try:
        summary = produce(config, stop)
    except KafkaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(summary.describe(), flush=True)
    return 1 if summary.send_errors else 0


if __name__ == "__main__":
    sys.exit(main())
