"""The connection every kafka-python client of the pipeline is built from, and the two
questions asked of the broker before a partition is read.

``KafkaConnection``: servers, security, group, the consumer's settings (reset, isolation
level, poll timeout), the watermark lag and the write timeout; ``consumer``, ``producer`` and
``admin`` make the clients, each riding out an unreachable broker. ``list_partitions``: the
partitions of the topics (a missing topic is an error). ``start_offsets``: where each
partition's read starts. State: none.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

_MAX_POLL_RECORDS = 500
BROKER_WAIT_MS = 180_000  # how long a running pipeline rides out an unreachable broker
STARTUP_BROKER_WAIT_MS = 10_000  # at start, an unreachable broker stops the start


@dataclasses.dataclass(frozen=True)
class KafkaConnection:
    """What every kafka-python client of the pipeline is built from.

    The SASL password is a field of its own, left out of the repr, so that
    printing a connection (or a transform holding one) never shows it.
    """

    client_config: tuple[tuple[str, Any], ...]  # bootstrap servers, security; no secret
    client_id: str
    group_id: Optional[str] = None
    auto_offset_reset: str = 'latest'
    isolation_level: str = 'read_committed'
    poll_timeout_ms: int = 100
    watermark_lag_s: float = 2.0
    write_timeout_ms: int = BROKER_WAIT_MS
    sasl_password: Optional[str] = dataclasses.field(default=None, repr=False)

    def _client_config(self) -> dict[str, Any]:
        """The settings shared by every client: ``client_config`` and the password."""
        config = dict(self.client_config)
        if self.sasl_password is not None:
            config['sasl_plain_password'] = self.sasl_password
        return config

    def consumer(
        self, role: str, broker_wait_ms: int = BROKER_WAIT_MS, **overrides: Any
    ) -> KafkaConsumer:
        """A consumer that waits up to ``broker_wait_ms`` for an unreachable broker;
        ``overrides``: other kafka-python settings (the group lease's membership)."""
        config = {
            **self._client_config(),
            **_resilience(broker_wait_ms),
            'client_id': f'{self.client_id}-{role}',
            'group_id': self.group_id,
            'enable_auto_commit': False,
            'auto_offset_reset': self.auto_offset_reset,
            'isolation_level': self.isolation_level,
            'max_poll_records': _MAX_POLL_RECORDS,
        }
        return KafkaConsumer(**{**config, **overrides})

    def producer(self, role: str) -> KafkaProducer:
        """A producer that keeps retrying a send for ``write_timeout_ms`` (kafka-python's
        default retries are unbounded within the delivery timeout), and waits as long for the
        metadata of its topic."""
        timeout_ms = max(self.write_timeout_ms, 1000)
        return KafkaProducer(
            **self._client_config(),
            **_resilience(BROKER_WAIT_MS),
            client_id=f'{self.client_id}-{role}',
            acks='all',
            linger_ms=1,
            delivery_timeout_ms=timeout_ms,
            max_block_ms=timeout_ms,
            request_timeout_ms=min(30_000, timeout_ms // 2),
        )  # kafka-python wants it below

    def admin(self, role: str, broker_wait_ms: int = BROKER_WAIT_MS) -> KafkaAdminClient:
        """An admin client (topic metadata) that waits up to ``broker_wait_ms`` for an
        unreachable broker."""
        return KafkaAdminClient(
            **self._client_config(),
            **_resilience(broker_wait_ms),
            client_id=f'{self.client_id}-{role}',
        )


def _resilience(broker_wait_ms: int) -> dict[str, int]:
    """Riding out a broker outage: a client made while the broker is down waits for it (its
    version probe) instead of failing its DoFn's setup, which would fail the job on Prism;
    reconnect attempts back off to at most 1 s, so the pipeline resumes soon after."""
    return {'api_version_auto_timeout_ms': broker_wait_ms, 'reconnect_backoff_max_ms': 1000}


def list_partitions(connection: KafkaConnection, topics: list[str]) -> list[tuple[str, int]]:
    """The (topic, partition) pairs of ``topics``; a missing topic is an error."""
    consumer = connection.consumer('metadata', broker_wait_ms=STARTUP_BROKER_WAIT_MS)
    try:
        partitions = []
        for topic in topics:
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise ValueError(
                    f'Kafka topic {topic!r} does not exist on '
                    f'{dict(connection.client_config)["bootstrap_servers"]}'
                )
            partitions.extend((topic, number) for number in sorted(numbers))
        return partitions
    finally:
        consumer.close()


def start_offsets(
    connection: KafkaConnection, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Each partition's committed offset in the group, else where auto_offset_reset says,
    which is then committed: offsets are committed from there on (transforms.kafka.offsets).
    One consumer for all the partitions."""
    consumer = connection.consumer('start-offsets')
    try:
        starts = {}
        if connection.group_id:
            committed = {tp: consumer.committed(tp) for tp in partitions}
            starts = {tp: offset for tp, offset in committed.items() if offset is not None}
        unset = [tp for tp in partitions if tp not in starts]
        if not unset:
            return starts
        if connection.auto_offset_reset == 'earliest':
            reset = consumer.beginning_offsets(unset)
        else:
            reset = consumer.end_offsets(unset)
        if connection.group_id:
            consumer.commit({tp: OffsetAndMetadata(offset, '', -1) for tp, offset in reset.items()})
        return {**starts, **reset}
    finally:
        consumer.close()
