"""Command line for the local Kafka stand-in.

    python -m standins.kafka start [--port P]       start in the background; print bootstrap servers
    python -m standins.kafka stop [--port P]        stop the broker named by the pid file
    python -m standins.kafka status [--port P]      exit 0 if running, 1 if not
    python -m standins.kafka topics NAME... [--partitions N] [--port P]

The port defaults to $KAFKA_PORT, else 9092.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from kafka.errors import KafkaError

from standins.kafka.broker import KafkaBroker
from standins.kafka.errors import BrokerError
from standins.kafka.topics import create_topics


def _parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per action, ``--port`` on each."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--port", type=int, default=None, help="client port (default: $KAFKA_PORT or 9092)"
    )
    parser = argparse.ArgumentParser(
        prog="python -m standins.kafka", description="Local single-node Kafka (KRaft)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "start", parents=[common], help="start (or reuse) a broker in the background"
    )
    commands.add_parser("stop", parents=[common], help="stop the broker")
    commands.add_parser("status", parents=[common], help="say whether the broker runs and answers")
    topics = commands.add_parser("topics", parents=[common], help="create topics if missing")
    topics.add_argument("names", nargs="+", metavar="NAME")
    topics.add_argument(
        "--partitions", type=int, default=3, help="partitions per new topic (default: 3)"
    )
    return parser


def _status(broker: KafkaBroker) -> int:
    """Print the broker's state; 0 if it runs, 1 if not."""
    pid = broker.running_pid()
    if pid is None:
        print(f"not running (port {broker.port})")
        return 1
    state = "ready" if broker.is_ready() else "not answering yet"
    print(f"running, pid {pid}, {state}, bootstrap servers {broker.bootstrap_servers}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # kafka-python's connection chatter
    broker = KafkaBroker(port=args.port)
    try:
        if args.command == "start":
            print(broker.start().bootstrap_servers)
        elif args.command == "stop":
            broker.stop()
        elif args.command == "status":
            return _status(broker)
        else:
            create_topics(broker.bootstrap_servers, args.names, args.partitions)
            print(" ".join(args.names))
    except (BrokerError, KafkaError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
