"""The connection every kafka-python client of the pipeline is built from, and the questions
asked of the broker before a partition is read.

``KafkaConnection``: servers, security, group, the consumer's settings (reset, isolation
level, poll timeout), the watermark lag and the write timeout; ``consumer``, ``producer`` and
``admin`` make the clients, each riding out an unreachable broker. ``list_partitions``: the
partitions of the topics (a missing topic is an error). ``start_offsets``: where each
partition's read starts. For jobs on the past: ``spans_between`` (the offsets of a time range,
and what retention deleted of it) and ``first_offsets``. State: none.
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


def described_partitions(admin: KafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
    """The partitions of ``topics`` as the broker describes them now (an admin client's
    metadata is not cached: partitions added since are there)."""
    return [
        TopicPartition(described['topic'], partition['partition'])
        for described in admin.describe_topics(topics)
        for partition in described['partitions']
    ]


def start_offsets(
    connection: KafkaConnection, partitions: list[TopicPartition], every_partition: bool = False
) -> dict[TopicPartition, int]:
    """Each partition's committed offset in the group, else where auto_offset_reset says,
    which is then committed: offsets are committed from there on (transforms.kafka.offsets).
    With ``every_partition`` (``partitions`` are all the topics' partitions, asked at once),
    a partition without one whose topic has partitions with one was added since the group
    last read: it starts at its first offset, whatever auto_offset_reset says (its records
    were written while nobody read them). One consumer for all the partitions."""
    consumer = connection.consumer('start-offsets')
    try:
        starts = {}
        if connection.group_id:
            committed = {tp: consumer.committed(tp) for tp in partitions}
            starts = {tp: offset for tp, offset in committed.items() if offset is not None}
        unset = [tp for tp in partitions if tp not in starts]
        if not unset:
            return starts
        added = _added_since_the_group_read(connection, consumer, unset) if every_partition else []
        reset = consumer.beginning_offsets(added) if added else {}
        rest = [tp for tp in unset if tp not in added]
        if rest and connection.auto_offset_reset == 'earliest':
            reset.update(consumer.beginning_offsets(rest))
        elif rest:
            reset.update(consumer.end_offsets(rest))
        if connection.group_id:
            consumer.commit({tp: OffsetAndMetadata(offset, '', -1) for tp, offset in reset.items()})
        return {**starts, **reset}
    finally:
        consumer.close()


def _added_since_the_group_read(
    connection: KafkaConnection, consumer: KafkaConsumer, unset: list[TopicPartition]
) -> list[TopicPartition]:
    """Of the partitions without a committed offset, those whose topic has another partition
    with one."""
    if not connection.group_id:
        return []
    read_before = set()
    for topic in {tp.topic for tp in unset}:
        siblings = consumer.partitions_for_topic(topic) or set()
        if any(consumer.committed(TopicPartition(topic, n)) is not None for n in siblings):
            read_before.add(topic)
    return [tp for tp in unset if tp.topic in read_before]


@dataclasses.dataclass(frozen=True)
class OffsetSpan:
    """Offsets [start, end) of a topic-partition."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclasses.dataclass(frozen=True)
class SpansBetween:
    """What the broker holds of a time range: the offset spans (empty ones left out), and for
    each partition that deleted records (retention) the time of its oldest record kept, if
    that is after the range's start (some of the range may be gone)."""

    spans: tuple[OffsetSpan, ...]
    kept_from_ms: dict[str, int]

    @property
    def records(self) -> int:
        return sum(span.size for span in self.spans)


def spans_between(
    connection: KafkaConnection, topics: list[str], from_ms: int, to_ms: int
) -> SpansBetween:
    """The offsets of ``topics`` whose records were written in [from_ms, to_ms), by the broker's
    offsets-for-times: from the first record at or after ``from_ms`` to the first at or after
    ``to_ms`` (or the end). A missing topic is an error."""
    partitions = [TopicPartition(t, p) for t, p in list_partitions(connection, topics)]
    consumer = connection.consumer('time-range', broker_wait_ms=STARTUP_BROKER_WAIT_MS)
    try:
        ends = consumer.end_offsets(partitions)
        beginnings = consumer.beginning_offsets(partitions)
        starts = consumer.offsets_for_times({tp: from_ms for tp in partitions})
        stops = consumer.offsets_for_times({tp: to_ms for tp in partitions})
        oldest = consumer.offsets_for_times({tp: 0 for tp in partitions if beginnings[tp] > 0})
    finally:
        consumer.close()
    spans, kept_from_ms = [], {}
    for tp in partitions:
        start = starts[tp].offset if starts[tp] else ends[tp]
        end = stops[tp].offset if stops[tp] else ends[tp]
        if end > start:
            spans.append(OffsetSpan(tp.topic, tp.partition, start, end))
        if oldest.get(tp) and oldest[tp].timestamp > from_ms:
            kept_from_ms[f'{tp.topic}/{tp.partition}'] = oldest[tp].timestamp
    return SpansBetween(tuple(spans), kept_from_ms)


def first_offsets(
    connection: KafkaConnection, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Each partition's oldest offset still kept (older ones were deleted by retention)."""
    consumer = connection.consumer('first-offsets', broker_wait_ms=STARTUP_BROKER_WAIT_MS)
    try:
        return consumer.beginning_offsets(partitions)
    finally:
        consumer.close()
