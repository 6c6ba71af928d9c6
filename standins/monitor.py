"""A live status line for the demo: what went into Kafka, what the pipeline read and wrote.

    python -m standins.monitor [--group G] [--entry-topic T] [--focus-topic T] [--prediction-topic T]
                               [--dead-letter-topic T] [--metrics-file PATH] [--interval S]
                               [--bootstrap-servers HOST:PORT] [--once]

Every ``--interval`` seconds it prints, on one line (rewritten in place on a terminal, else one
line per interval):

- events in: the end offsets of the entry and focus topics, summed over their partitions;
- events read: the consumer group's committed offsets on those topics, summed;
- lag: end minus committed offset, summed over the partitions the group has committed on;
- predictions written and dead letters: the end offsets of those topics;
- predictions per second over the last interval;
- the focus-to-prediction latency percentiles from the pipeline's metrics file, if any.

Offsets count records since each topic was created, not since the pipeline started.
A topic that does not exist yet counts as 0, a group without commits as n/a; a broker error
is shown in the line and the next interval tries again. ``--once`` prints one sample as a
JSON object instead (its ``predictions_per_s`` is null: that needs two samples).

The defaults come from the pipeline's environment variables (GROUP_ID, ENTRY_EVENT_TOPIC_NAME,
FOCUS_EVENT_TOPIC_NAME, COUPON_PREDICTION_TOPIC_NAME, DEAD_LETTER_TOPIC_NAME, METRICS_FILE,
BOOTSTRAP_SERVERS).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from standins.cli import positive_float

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_INTERVAL_S = 1.0
REQUEST_TIMEOUT_MS = 5_000
UNKNOWN_TOPIC_OR_PARTITION = 3  # Kafka error code in topic metadata
_CLEAR_TO_END_OF_LINE = "\x1b[K"


@dataclass(frozen=True)
class Topics:
    """The topics the pipeline reads (entry, focus) and writes (prediction, dead letter)."""

    entry: str
    focus: str
    prediction: str
    dead_letter: str

    @property
    def names(self) -> list[str]:
        """All four, in a fixed order."""
        return [self.entry, self.focus, self.prediction, self.dead_letter]


@dataclass
class Status:
    """One sample of the figures; None where unknown (n/a)."""

    at: float  # time.time() of the sample
    events_in: int | None = None
    events_read: int | None = None
    consumer_lag: int | None = None
    partitions_without_commit: int | None = None  # input partitions the group has no offset for
    predictions_written: int | None = None
    dead_letters: int | None = None
    predictions_per_s: float | None = None
    focus_to_prediction_p50_ms: float | None = None
    focus_to_prediction_p99_ms: float | None = None
    metrics_age_s: float | None = None  # how old the metrics file is
    missing_topics: list[str] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> str:
        """The sample as a JSON object (one line)."""
        return json.dumps(dataclasses.asdict(self))


class OffsetReader:
    """Reads end offsets and a group's committed offsets, reconnecting after broker errors.

    The Kafka clients are created on first use and dropped after any error, so a broker that
    is down or restarting only costs failed samples.
    """

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers.split(",")
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None

    def partitions(self, topics: Iterable[str]) -> dict[str, list[TopicPartition]]:
        """The partitions of each topic in ``topics`` that exists (missing ones are left out)."""
        described = self._admin_client().describe_topics(list(topics))
        found: dict[str, list[TopicPartition]] = {}
        for topic in described:
            if topic["error_code"] == UNKNOWN_TOPIC_OR_PARTITION:
                continue
            if topic["error_code"] != 0:
                raise KafkaError(
                    f"metadata of topic {topic['topic']}: error code {topic['error_code']}"
                )
            found[topic["topic"]] = [
                TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"]
            ]
        return found

    def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset the next record of each partition will get."""
        if not partitions:
            return {}
        return self._offsets_consumer().end_offsets(list(partitions))

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """The group's committed offsets (partitions without one are left out)."""
        offsets = self._admin_client().list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    def reset(self) -> None:
        """Drop the clients; the next call reconnects."""
        for client in (self._admin, self._consumer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 (a broken client may fail to close; it is dropped anyway)
                    pass
        self._admin = self._consumer = None

    def _admin_client(self) -> KafkaAdminClient:
        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                client_id="standins-monitor",
                request_timeout_ms=REQUEST_TIMEOUT_MS,
                api_version_auto_timeout_ms=REQUEST_TIMEOUT_MS,
            )
        return self._admin

    def _offsets_consumer(self) -> KafkaConsumer:
        """A consumer outside any group, used only to look up end offsets."""
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                client_id="standins-monitor",
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=REQUEST_TIMEOUT_MS,
                api_version_auto_timeout_ms=REQUEST_TIMEOUT_MS,
            )
        return self._consumer


def sample(
    reader: OffsetReader, topics: Topics, group: str | None, metrics_file: Path | None
) -> Status:
    """Take one sample; an error talking to Kafka is recorded in ``error`` (and the clients reset)."""
    status = Status(at=time.time())
    _read_metrics(metrics_file, status)
    try:
        _read_offsets(reader, topics, group, status)
    except Exception as error:  # noqa: BLE001 (kafka-python raises more than KafkaError; a monitor keeps going)
        reader.reset()
        status.error = f"{type(error).__name__}: {error}"
    return status


def _read_offsets(reader: OffsetReader, topics: Topics, group: str | None, status: Status) -> None:
    """Fill the offset figures of ``status``."""
    partitions = reader.partitions(topics.names)
    status.missing_topics = [name for name in topics.names if name not in partitions]
    ends = reader.end_offsets([tp for tps in partitions.values() for tp in tps])

    def total(*names: str) -> int:
        return sum(offset for tp, offset in ends.items() if tp.topic in names)

    status.events_in = total(topics.entry, topics.focus)
    status.predictions_written = total(topics.prediction)
    status.dead_letters = total(topics.dead_letter)
    if not group:
        return
    inputs = {tp for tp in ends if tp.topic in (topics.entry, topics.focus)}
    committed = {tp: offset for tp, offset in reader.committed(group).items() if tp in inputs}
    status.partitions_without_commit = len(inputs) - len(committed)
    if committed:
        status.events_read = sum(committed.values())
        status.consumer_lag = sum(max(0, ends[tp] - offset) for tp, offset in committed.items())


def _read_metrics(metrics_file: Path | None, status: Status) -> None:
    """Copy the latency percentiles from the pipeline's metrics file, if it is there and readable."""
    if metrics_file is None:
        return
    try:
        metrics = json.loads(metrics_file.read_text())
        status.metrics_age_s = round(time.time() - metrics_file.stat().st_mtime, 1)
    except (OSError, ValueError):
        return  # not written yet, or caught mid-write by a writer that does not replace atomically
    if isinstance(metrics, dict):
        status.focus_to_prediction_p50_ms = _number(metrics.get("focus_to_prediction_p50_ms"))
        status.focus_to_prediction_p99_ms = _number(metrics.get("focus_to_prediction_p99_ms"))


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def with_rate(status: Status, previous: Status | None) -> Status:
    """``status`` with predictions per second since ``previous`` (None if either count is unknown)."""
    if (
        previous is None
        or status.predictions_written is None
        or previous.predictions_written is None
    ):
        return status
    seconds = status.at - previous.at
    if seconds > 0:
        status.predictions_per_s = round(
            (status.predictions_written - previous.predictions_written) / seconds, 1
        )
    return status


def format_line(status: Status) -> str:
    """The human status line."""
    clock = time.strftime("%H:%M:%S", time.localtime(status.at))
    lag = _count(status.consumer_lag)
    if status.consumer_lag is not None and status.partitions_without_commit:
        lag += f" (+{status.partitions_without_commit} partitions uncommitted)"
    parts = [
        clock,
        f"in {_count(status.events_in)}",
        f"read {_count(status.events_read)}",
        f"lag {lag}",
        f"predictions {_count(status.predictions_written)} ({_rate(status.predictions_per_s)}/s)",
        f"dead letters {_count(status.dead_letters)}",
        f"p50 {_ms(status.focus_to_prediction_p50_ms)} p99 {_ms(status.focus_to_prediction_p99_ms)}",
    ]
    if status.missing_topics:
        parts.append(f"missing topics: {', '.join(status.missing_topics)}")
    if status.error:
        parts.append(f"error: {status.error}")
    return " | ".join(parts)


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def watch(
    take: Callable[[], Status],
    interval_s: float,
    stop: threading.Event,
    out: TextIO = sys.stdout,
) -> None:
    """Print a status line every ``interval_s`` seconds until ``stop`` is set."""
    in_place = out.isatty()
    width = shutil.get_terminal_size().columns - 1  # a wrapped line cannot be rewritten in place
    previous: Status | None = None
    began = time.monotonic()
    ticks = 0
    while not stop.is_set():
        status = with_rate(take(), previous)
        previous = status if status.error is None else previous
        line = format_line(status)
        out.write(f"\r{line[:width]}{_CLEAR_TO_END_OF_LINE}" if in_place else f"{line}\n")
        out.flush()
        # Keep to the schedule; after a slow sample, skip the ticks it overran.
        ticks = max(ticks + 1, int((time.monotonic() - began) / interval_s) + 1)
        stop.wait(max(0.0, began + ticks * interval_s - time.monotonic()))
    if in_place:
        out.write("\n")
        out.flush()


def _parser() -> argparse.ArgumentParser:
    """The argument parser; defaults come from the pipeline's environment variables."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m standins.monitor", description="Live status of the demo pipeline."
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=env("BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP_SERVERS,
        help=f"(default: $BOOTSTRAP_SERVERS or {DEFAULT_BOOTSTRAP_SERVERS})",
    )
    parser.add_argument(
        "--group", default=env("GROUP_ID") or None, help="consumer group (default: $GROUP_ID)"
    )
    for flag, variable in (
        ("--entry-topic", "ENTRY_EVENT_TOPIC_NAME"),
        ("--focus-topic", "FOCUS_EVENT_TOPIC_NAME"),
        ("--prediction-topic", "COUPON_PREDICTION_TOPIC_NAME"),
        ("--dead-letter-topic", "DEAD_LETTER_TOPIC_NAME"),
    ):
        default = env(variable) or None
        parser.add_argument(
            flag, default=default, required=default is None, help=f"(default: ${variable})"
        )
    parser.add_argument(
        "--metrics-file",
        type=Path,
        default=env("METRICS_FILE") or None,
        help="(default: $METRICS_FILE)",
    )
    parser.add_argument("--interval", type=positive_float, default=DEFAULT_INTERVAL_S, metavar="S")
    parser.add_argument("--once", action="store_true", help="print one sample as JSON and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print samples until Ctrl-C / SIGTERM, or one JSON sample with ``--once``.

    Returns 1 if the ``--once`` sample failed with a broker error, else 0.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # kafka-python's connection chatter
    topics = Topics(
        args.entry_topic, args.focus_topic, args.prediction_topic, args.dead_letter_topic
    )
    reader = OffsetReader(args.bootstrap_servers)
    try:
        if args.once:
            status = sample(reader, topics, args.group, args.metrics_file)
            print(status.as_json())
            return 1 if status.error else 0
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda _signum, _frame: stop.set())
        watch(lambda: sample(reader, topics, args.group, args.metrics_file), args.interval, stop)
    finally:
        reader.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
