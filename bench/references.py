"""The two references the pipeline is measured against, as plain kafka-python services.

    python -m bench.references simple|passthrough --bootstrap-servers HOST:PORT
        --entry-topic T --focus-topic T --output-topic T --group G --stats-file PATH
        [--central-url URL --scorer-url URL]

``simple``: the seed's service done the simple way, one message at a time. An entry event
fetches the customer's context from the central and keeps it in a dict; a focus event takes
the context from the dict (fetching it then if the entry has not come), sends one scorer
request with all its department's coupons as instances, keeps the top 5 at or above 0.2 and
writes one prediction message per coupon. It reuses the pipeline's pure functions (parsing
and validation, the central client, the scorer row, the selection, the message format), so
its output is the pipeline's, message for message; it has no batching, no dead letters and
no retries of the scorer.

``passthrough``: the ceiling: every focus-topic message is forwarded unchanged to the output
topic, with a ``focus_event_id`` header naming its position; entry messages are read and
dropped.

Both read the two input topics from the group's committed offsets (else the earliest), one
poll at a time; after a poll's records are handled they flush the producer (acks=all) and
commit the offsets (at-least-once, as the pipeline), then rewrite the stats file (JSON
counters; ``no_coupon`` counts focus events that legitimately produce no message). They print
``ready`` after the first poll and stop on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import requests
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from transforms.central import CentralClient, CentralConfig, CentralUnavailable
from transforms.domain import (
    CouponPrediction,
    CustomerContext,
    EnrichedFocus,
    FocusEvent,
    KafkaRecord,
)
from transforms.events import ENTRY_EVENT_TYPE, FOCUS_EVENT_TYPE, InvalidEvent, parse_store_event
from transforms.kafka.python_io import kafka_record
from transforms.messages import prediction_result_message
from transforms.scoring import scorer_rows
from transforms.selection import top_coupons

TOP_K = 5  # the seed service's defaults (TOP_K, PREDICTION_THRESHOLD)
THRESHOLD = 0.2
SCORER_TIMEOUT_S = 5.0
FOCUS_ID_HEADER = 'focus_event_id'
READY = 'ready'

Header = tuple[str, bytes]
Output = tuple[bytes | None, bytes, list[Header]]  # key, value, headers
Handler = Callable[[ConsumerRecord], list[Output]]


def focus_event_id(record: ConsumerRecord) -> str:
    """The position of a record as the pipeline names focus events: ``topic/partition/offset``."""
    return f'{record.topic}/{record.partition}/{record.offset}'


class Contexts(Protocol):
    """Where a service keeps the customers' contexts between an entry and its focus events."""

    def get(self, customer_id: int) -> CustomerContext | None:
        """The customer's context, None if not kept."""

    def put(self, customer_id: int, context: CustomerContext) -> None:
        """Keep the customer's context."""


class DictContexts:
    """Contexts in a plain dict (the simple reference's)."""

    def __init__(self) -> None:
        self._contexts: dict[int, CustomerContext] = {}

    def get(self, customer_id: int) -> CustomerContext | None:
        return self._contexts.get(customer_id)

    def put(self, customer_id: int, context: CustomerContext) -> None:
        self._contexts[customer_id] = context


class CouponService:
    """The seed's service, one record at a time: what the simple and the Quix references do.

    An entry fetches the customer's context into ``contexts``; a focus event takes it from
    there (fetching it then if absent), sends one scorer request with its department's coupons
    and yields one prediction message per chosen coupon. ``stats`` counts what happened.
    """

    def __init__(
        self, central: CentralClient, scorer_url: str, entry_topic: str, focus_topic: str
    ) -> None:
        self.stats: Counter[str] = Counter()
        self._central = central
        self._scorer = requests.Session()
        self._scorer_url = scorer_url
        self._event_type = {entry_topic: ENTRY_EVENT_TYPE, focus_topic: FOCUS_EVENT_TYPE}
        self._catalogue = central.coupon_catalogue()

    def handle(self, raw: KafkaRecord, contexts: Contexts) -> list[Output]:
        """Handle one input record; return the prediction messages it yields."""
        try:
            event = parse_store_event(raw, self._event_type[raw.topic])
            if not isinstance(event, FocusEvent):
                contexts.put(event.customer_id, self._central.customer_context(event.customer_id))
                return []
            return self._predict(event, contexts)
        except InvalidEvent:
            self.stats['invalid'] += 1
        except (CentralUnavailable, requests.RequestException, KeyError, ValueError):
            self.stats['failed'] += 1
        return []

    def _predict(self, focus: FocusEvent, contexts: Contexts) -> list[Output]:
        """Score the department's coupons for the customer; the chosen ones as messages."""
        self.stats['focus_events'] += 1
        context = contexts.get(focus.customer_id)
        if context is None:
            context = self._central.customer_context(focus.customer_id)
            contexts.put(focus.customer_id, context)
        coupons = self._catalogue.get(focus.department_id)
        if not coupons:
            self.stats['unknown_department'] += 1
            return []
        enriched = EnrichedFocus(focus, context, coupons)
        rows = scorer_rows(enriched)
        response = self._scorer.post(
            self._scorer_url, json={'instances': rows}, timeout=SCORER_TIMEOUT_S
        )
        response.raise_for_status()
        predictions = tuple(
            CouponPrediction(coupon.coupon_id, float(p))
            for coupon, p in zip(coupons, response.json()['predictions'])
        )
        chosen = top_coupons(predictions, TOP_K, THRESHOLD)
        if not chosen:
            self.stats['no_coupon'] += 1
        return [(*prediction_result_message(focus, coupon), []) for coupon in chosen]


class SimpleService(CouponService):
    """The simple alternative: a dict of contexts, one scorer request per focus event."""

    def __init__(
        self, central: CentralClient, scorer_url: str, entry_topic: str, focus_topic: str
    ) -> None:
        super().__init__(central, scorer_url, entry_topic, focus_topic)
        self._contexts = DictContexts()

    def __call__(self, record: ConsumerRecord) -> list[Output]:
        """Handle one kafka-python record; return the prediction messages it yields."""
        raw = kafka_record(record)
        return self.handle(raw, self._contexts)


class Passthrough:
    """The ceiling: focus messages forwarded as they are, entry messages dropped."""

    def __init__(self, focus_topic: str) -> None:
        self.stats: Counter[str] = Counter()
        self._focus_topic = focus_topic

    def __call__(self, record: ConsumerRecord) -> list[Output]:
        """The record itself if it came from the focus topic, with its position as a header."""
        if record.topic != self._focus_topic:
            return []
        self.stats['forwarded'] += 1
        return [(record.key, record.value, [(FOCUS_ID_HEADER, focus_event_id(record).encode())])]


def serve(
    args: argparse.Namespace, handle: Handler, stats: Counter[str], stop: threading.Event
) -> None:
    """Consume, handle, produce, flush, commit, one poll at a time, until ``stop`` is set."""
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap_servers.split(','),
        group_id=args.group,
        client_id=f'bench-{args.kind}',
        enable_auto_commit=False,
        auto_offset_reset='earliest',
        max_poll_records=500,
    )
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap_servers.split(','),
        client_id=f'bench-{args.kind}',
        acks='all',
        linger_ms=1,
    )
    consumer.assign(
        [
            TopicPartition(topic, partition)
            for topic in (args.entry_topic, args.focus_topic)
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
    )
    ready = False
    try:
        while not stop.is_set():
            batch = consumer.poll(timeout_ms=100)
            if not ready:
                print(READY, flush=True)
                ready = True
            if not batch:
                continue
            for records in batch.values():
                for record in records:
                    for key, value, headers in handle(record):
                        producer.send(args.output_topic, key=key, value=value, headers=headers)
            producer.flush()
            consumer.commit()
            write_stats(args.stats_file, stats)
    finally:
        producer.close()
        consumer.close()


def write_stats(path: Path, stats: Counter[str]) -> None:
    """Replace the stats file atomically."""
    partial = path.with_suffix('.tmp')
    partial.write_text(json.dumps(stats))
    partial.replace(path)


def read_stats(path: Path) -> dict[str, int]:
    """The counters a reference last wrote (empty before its first batch)."""
    return json.loads(path.read_text()) if path.exists() else {}


def _handler(args: argparse.Namespace) -> SimpleService | Passthrough:
    if args.kind == 'passthrough':
        return Passthrough(args.focus_topic)
    if not (args.central_url and args.scorer_url):
        raise SystemExit('simple needs --central-url and --scorer-url')
    central = CentralClient(CentralConfig(args.central_url))
    return SimpleService(central, args.scorer_url, args.entry_topic, args.focus_topic)


def add_io_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every reference takes: broker, topics, group, stats file, stand-ins."""
    for flag in (
        '--bootstrap-servers',
        '--entry-topic',
        '--focus-topic',
        '--output-topic',
        '--group',
    ):
        parser.add_argument(flag, required=True)
    parser.add_argument('--stats-file', type=Path, required=True)
    parser.add_argument('--central-url')
    parser.add_argument('--scorer-url')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m bench.references', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument('kind', choices=('simple', 'passthrough'))
    add_io_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one reference until SIGTERM or SIGINT."""
    args = _parser().parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    handler = _handler(args)
    serve(args, handler, handler.stats, stop)
    return 0


if __name__ == '__main__':
    sys.exit(main())
