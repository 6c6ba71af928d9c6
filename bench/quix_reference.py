"""The Quix Streams reference: the seed's service as a Python user of ``quixstreams`` writes it.

    python -m bench.quix_reference --bootstrap-servers HOST:PORT --entry-topic T
        --focus-topic T --output-topic T --group G --stats-file PATH --state-dir DIR
        --central-url URL --scorer-url URL

An ``Application`` with the consumer group G reads the entry and the focus topics as two
StreamingDataFrames, concatenated into one (Quix then hands their messages over in timestamp
order). One stateful ``apply`` does the work of the simple reference with the same code
(:class:`bench.references.CouponService`, on the pipeline's pure functions): an entry fetches
the customer's context from the central into the application's state (RocksDB, with Quix's
changelog topic); a focus event takes it from there (fetching it then if absent), sends one
scorer request with its department's coupons (Quix has no batching of outside calls), keeps
the top 5 at or above 0.2 and yields one prediction message per coupon, which ``to_topic``
writes to the output topic. The messages are the simple reference's, byte for byte.

Quix keys state by the message key. The store traffic keys every message, entry and focus
alike, by its customer_id (``standins.store_traffic.encoding``), and the bench's topics all
have the same partitions, so a customer's entries and focus events meet in the same state
partition without a ``group_by`` (a repartition would only add a topic and a hop). The
output keeps the input key, which is the key ``prediction_result_message`` gives (the
customer_id).

Two settings differ from Quix's defaults, as a user who measures would set them:

- ``consumer_poll_timeout`` 0.1 s (the simple reference's poll timeout) instead of 1 s: with
  two concatenated topics Quix aligns them by time and reads in batches, and a batch read
  waits for the whole timeout unless 10,000 messages come; with 1 s a focus event waited
  0.5 s on average (p50 550-690 ms at 10/s, against 77 ms with 0.1 s).
- ``commit_interval`` 1 s instead of 5 s: at-least-once (Quix's default) with a checkpoint
  (producer flush, state flush, offset commit) every second, so that the committed offsets
  settle within the bench's lag check.

It prints ``ready`` once the group has assigned it its partitions, rewrites the stats file
(JSON counters, ``no_coupon`` among them) whenever ``no_coupon`` changes, and stops on
SIGTERM or SIGINT (Quix's own handlers).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from quixstreams import Application, State, message_context

from bench.references import READY, CouponService, add_io_arguments, write_stats
from transforms.central import CentralClient, CentralConfig
from transforms.domain import CustomerContext, KafkaRecord

COMMIT_INTERVAL_S = 1.0
POLL_TIMEOUT_S = 0.1
CONTEXT = 'context'  # the state entry of the current key (the customer)

Process = Callable[[bytes, bytes, int, Any, State], list[bytes]]


class QuixContexts:
    """The customers' contexts in Quix's state, one entry under the message key (the customer)."""

    def __init__(self, state: State) -> None:
        self._state = state

    def get(self, customer_id: int) -> CustomerContext | None:
        stored = self._state.get(CONTEXT)
        if stored is None:
            return None
        return CustomerContext(customer_id, stored['known'], tuple(map(tuple, stored['profile'])))

    def put(self, customer_id: int, context: CustomerContext) -> None:
        self._state.set(CONTEXT, {'known': context.known, 'profile': list(context.profile)})


class StatsFile:
    """Quix's ``on_message_processed``: rewrites the stats file when ``no_coupon`` changed."""

    def __init__(self, path: Path, stats: Counter[str]) -> None:
        self._path = path
        self._stats = stats
        self._written = -1

    def __call__(self, _topic: str, _partition: int, _offset: int) -> None:
        if self._stats['no_coupon'] != self._written:
            write_stats(self._path, self._stats)
            self._written = self._stats['no_coupon']


class ReadyApplication(Application):
    """An Application that prints ``ready`` after its first partition assignment.

    Quix has no public hook for it; ``_on_assign`` is the consumer's callback in 3.28.
    """

    _announced = False

    def _on_assign(self, consumer: Any, topic_partitions: list[Any]) -> None:
        super()._on_assign(consumer, topic_partitions)
        if topic_partitions and not self._announced:
            print(READY, flush=True)
            self._announced = True


def processor(service: CouponService) -> Process:
    """The stateful ``apply`` callback: one input message to its prediction messages' values."""

    def process(
        value: bytes, key: bytes, timestamp: int, _headers: Any, state: State
    ) -> list[bytes]:
        where = message_context()
        raw = KafkaRecord(where.topic, where.partition, where.offset, key, value, timestamp)
        return [message for _key, message, _ in service.handle(raw, QuixContexts(state))]

    return process


def application(args: argparse.Namespace, service: CouponService) -> Application:
    """The Quix application: both inputs, the stateful service, the output topic."""
    app = ReadyApplication(
        broker_address=args.bootstrap_servers,
        consumer_group=args.group,
        auto_offset_reset='earliest',
        commit_interval=COMMIT_INTERVAL_S,
        state_dir=args.state_dir,
        on_message_processed=StatsFile(args.stats_file, service.stats),
        consumer_poll_timeout=POLL_TIMEOUT_S,
    )
    entry, focus = (
        app.topic(name, key_deserializer='bytes', value_deserializer='bytes')
        for name in (args.entry_topic, args.focus_topic)
    )
    output = app.topic(args.output_topic, key_serializer='bytes', value_serializer='bytes')
    stream = app.dataframe(entry).concat(app.dataframe(focus))
    stream = stream.apply(processor(service), stateful=True, metadata=True, expand=True)
    stream.to_topic(output)
    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m bench.quix_reference', description=__doc__.split('\n\n')[0]
    )
    add_io_arguments(parser)
    parser.add_argument('--state-dir', type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the Quix reference until SIGTERM or SIGINT."""
    args = _parser().parse_args(argv)
    if not (args.central_url and args.scorer_url):
        raise SystemExit('quix needs --central-url and --scorer-url')
    central = CentralClient(CentralConfig(args.central_url))
    service = CouponService(central, args.scorer_url, args.entry_topic, args.focus_topic)
    application(args, service).run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
