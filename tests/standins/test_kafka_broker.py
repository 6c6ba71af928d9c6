"""End to end: the local Kafka stand-in starts, serves a producer and a consumer, and stops.

Each test starts its own broker (a few seconds) on a non-default port with a fresh data dir.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from standins.kafka.broker import KafkaBroker, create_topics
from standins.ports import port_free

PORT = 19092
TOPIC = "standin-round-trip"
MESSAGES = 30


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker on ``PORT`` that this test started (and only then stops)."""
    with KafkaBroker(port=PORT, data_dir=tmp_path / "kafka-data") as started:
        assert started.started_here, f"a stand-in broker was already running on port {PORT}"
        yield started


def _produce(bootstrap_servers: str, records: set[tuple[str, str]]) -> None:
    """Send ``records`` as (key, value) strings with acks=all and wait for every ack."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        key_serializer=str.encode,
        value_serializer=str.encode,
    )
    try:
        futures = [producer.send(TOPIC, key=key, value=value) for key, value in sorted(records)]
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()


def _consume(bootstrap_servers: str, count: int, timeout: float = 30.0) -> list[tuple[str, str]]:
    """Read ``count`` records from every partition of ``TOPIC``, from the beginning."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        key_deserializer=bytes.decode,
        value_deserializer=bytes.decode,
    )
    try:
        partitions = [
            TopicPartition(TOPIC, p) for p in sorted(consumer.partitions_for_topic(TOPIC))
        ]
        assert len(partitions) == 3
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        received: list[tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while len(received) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                received.extend((record.key, record.value) for record in batch)
        return received
    finally:
        consumer.close()


def _process_exists(pid: int) -> bool:
    """Whether a process (zombies included) with ``pid`` exists."""
    return Path(f"/proc/{pid}").exists()


def test_keyed_messages_round_trip(broker: KafkaBroker) -> None:
    create_topics(broker.bootstrap_servers, [TOPIC], partitions=3)
    create_topics(broker.bootstrap_servers, [TOPIC], partitions=3)  # idempotent
    sent = {(f"key-{i % 7}", f"value-{i}") for i in range(MESSAGES)}

    _produce(broker.bootstrap_servers, sent)
    received = _consume(broker.bootstrap_servers, MESSAGES)

    assert len(received) == MESSAGES
    assert set(received) == sent


def test_start_reuses_running_broker(broker: KafkaBroker) -> None:
    again = KafkaBroker(port=PORT).start(timeout=10)

    assert not again.started_here
    assert again.running_pid() == broker.running_pid()


def test_stop_ends_process_and_frees_ports(broker: KafkaBroker) -> None:
    pid = broker.running_pid()
    assert pid is not None

    broker.stop()

    assert not _process_exists(pid)
    assert broker.running_pid() is None
    assert not broker.pid_file.exists()
    assert port_free(PORT)
    assert port_free(broker.controller_port)
