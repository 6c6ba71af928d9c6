"""The command line of the store traffic: ``python -m standins.store_traffic`` (see the package).

Kafka settings default to the pipeline's environment variables; SIGINT and SIGTERM end the
run gracefully (a second one interrupts at once), and the summary is printed at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kafka.errors import KafkaError

from standins.central.generate import DEFAULT_CUSTOMERS, DEPARTMENTS
from standins.cli import positive_float
from standins.store_traffic.producer import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_ENTRY_TOPIC,
    DEFAULT_FOCUS_TOPIC,
    DEFAULT_RATE,
    TrafficConfig,
    produce,
)
from standins.store_traffic.stream import (
    DEFAULT_CONCURRENT_VISITS,
    DEFAULT_EARLY_FOCUS_SHARE,
    DEFAULT_MALFORMED_SHARE,
    DEFAULT_SEED,
    DEFAULT_UNKNOWN_CUSTOMER_SHARE,
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
