"""Beam's cross-language Kafka transforms (Java KafkaIO through an expansion service).

They run in a Java SDK harness: on Flink (the TaskManagers' Java environment) or on Prism
with the PROCESS environment of ``pipeline.xlang``. ``expansion_service`` is the one
the caller manages (pipeline.xlang.runtime: a JVM the SDK starts and stops).

``ReadFromKafkaXlang``
  In:  PBegin.  Out: ``records``: unbounded PCollection[KafkaRecord], mapped from
  KafkaIO's ``with_metadata=True`` rows and timestamped with the record's Kafka
  (CreateTime) timestamp; ``gaps``: an empty PCollection[EndedOffsets]: KafkaIO does not
  say which offsets it skipped because they hold no record (compaction, transaction
  markers). On a topic with such gaps the commits of a partition stop at its first gap
  (``offsets.ended_ahead`` grows) and a restart reads again from there: repeats, no loss.
  ``undecodable``: empty too; the Java client decodes every codec Kafka has, and fails the
  read on a corrupt batch. ``isolation.level`` is the connection's (read_committed by
  default).
  State: KafkaIO's own (per-partition offsets, in the runner). At pipeline construction, the
  group's start offset is committed for every partition that has none
  (``connection.start_offsets``; a partition of a topic whose other partitions have one was
  added since: its first offset), so that KafkaIO starts there. On Prism KafkaIO commits
  nothing (``commit_offset_in_finalize`` needs stable input, which Prism 2.73 refuses) and
  transforms.kafka.offsets does. With ``commit_on_checkpoint`` (Flink, where the expansion
  service's ``use_deprecated_read`` makes the read KafkaIO's UnboundedSource, a native Flink
  source) the offsets live in Flink's checkpoints and KafkaIO commits each completed
  checkpoint's to the group: a restart without the checkpoint resumes there.

``WriteToKafkaXlang``
  In:  PCollection[Outgoing].  Out: PCollection[EndedOffsets] of their sources, output
  when the messages are *handed to* KafkaIO's writer, not once the broker acknowledged
  them: Beam's ``WriteToKafka`` outputs nothing. This is weaker than the Python
  connector: a crash after the offsets were committed and before the producer flushed
  can lose those messages; ``failed`` is empty (KafkaIO's writer fails its bundle on a
  refused record). State: KafkaIO's producer (acks=all). A message without a key
  (none in this pipeline) is written with an empty key: the write takes byte pairs.

Every client gets the connection's servers and security settings in Java names. The SASL
password goes into ``sasl.jaas.config``, which is built only when a transform expands and
travels in the pipeline's definition (to the runner and the harness), never logged here;
Kafka's Java clients print it as ``[hidden]``.
"""

from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.io.kafka import ReadFromKafka, WriteToKafka
from apache_beam.transforms.external import JavaJarExpansionService
from kafka import TopicPartition

from transforms.domain import EndedOffsets, FailedWrite, KafkaRecord, Outgoing, UndecodableBatch
from transforms.kafka.connection import KafkaConnection, list_partitions, start_offsets
from transforms.kafka.python_io import (
    ENDED,
    FAILED,
    GAPS,
    RECORDS,
    UNDECODABLE,
)

_LOGIN_MODULES = {
    'PLAIN': 'org.apache.kafka.common.security.plain.PlainLoginModule',
    'SCRAM-SHA-256': 'org.apache.kafka.common.security.scram.ScramLoginModule',
    'SCRAM-SHA-512': 'org.apache.kafka.common.security.scram.ScramLoginModule',
}


def _jaas_quoted(text: str) -> str:
    return '"' + text.replace('\\', '\\\\').replace('"', '\\"') + '"'


def java_client_config(connection: KafkaConnection, role: str) -> dict[str, str]:
    """The connection's servers and security settings, named as Kafka's Java clients name them."""
    config = dict(connection.client_config)
    java = {
        'bootstrap.servers': ','.join(config['bootstrap_servers']),
        'security.protocol': config.get('security_protocol', 'PLAINTEXT'),
        'client.id': f'{connection.client_id}-{role}',
    }
    mechanism = config.get('sasl_mechanism')
    if mechanism:
        java['sasl.mechanism'] = mechanism
        java['sasl.jaas.config'] = (
            f'{_LOGIN_MODULES[mechanism]} required '
            f'username={_jaas_quoted(config["sasl_plain_username"])} '
            f'password={_jaas_quoted(connection.sasl_password or "")};'
        )
    return java


def consumer_config(connection: KafkaConnection) -> dict[str, str]:
    config = {
        **java_client_config(connection, 'reader'),
        'enable.auto.commit': 'false',
        'auto.offset.reset': connection.auto_offset_reset,
        'isolation.level': connection.isolation_level,
    }
    if connection.group_id:
        config['group.id'] = connection.group_id
    return config


def to_kafka_record(row: Any) -> KafkaRecord:
    """One row of ``ReadFromKafka(with_metadata=True)`` as a KafkaRecord."""
    return KafkaRecord(
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        key=row.key,
        value=row.value,
        timestamp_ms=row.timestamp,
        headers=tuple((header.key, header.value or b'') for header in row.headers or ()),
    )


def commit_start_offsets(connection: KafkaConnection, topics: list[str]) -> None:
    """Commits, for every partition the group has no offset for, where it starts."""
    start_offsets(
        connection,
        [
            TopicPartition(topic, partition)
            for topic, partition in list_partitions(connection, topics)
        ],
        every_partition=True,
    )


class ReadFromKafkaXlang(beam.PTransform):
    """KafkaIO's unbounded read of ``topics`` (see the module docstring)."""

    def __init__(
        self,
        connection: KafkaConnection,
        topics: list[str],
        expansion_service: JavaJarExpansionService,
        commit_on_checkpoint: bool = False,
    ):
        super().__init__()
        self._connection = connection
        self._topics = topics
        self._expansion_service = expansion_service
        self._commit_on_checkpoint = commit_on_checkpoint

    def expand(self, begin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        if self._connection.group_id:
            commit_start_offsets(self._connection, self._topics)
        rows = begin | 'KafkaIO' >> ReadFromKafka(
            consumer_config=consumer_config(self._connection),
            topics=self._topics,
            with_metadata=True,
            timestamp_policy=ReadFromKafka.create_time_policy,
            commit_offset_in_finalize=self._commit_on_checkpoint,
            expansion_service=self._expansion_service,
        )
        records = rows | 'ToKafkaRecord' >> beam.Map(to_kafka_record).with_output_types(KafkaRecord)
        gaps = begin | 'NoGaps' >> beam.Create([]).with_output_types(EndedOffsets)
        undecodable = begin | 'NoUndecodable' >> beam.Create([]).with_output_types(UndecodableBatch)
        return {RECORDS: records, GAPS: gaps, UNDECODABLE: undecodable}


def _messages(outgoing: Outgoing) -> Iterator[tuple[bytes, bytes]]:
    for key, value in outgoing.messages:
        yield (b'' if key is None else key), value


def _handed_over(outgoing: Outgoing) -> Iterator[EndedOffsets]:
    if outgoing.source is not None:
        yield EndedOffsets.of(outgoing.source)


class WriteToKafkaXlang(beam.PTransform):
    """KafkaIO's write of Outgoing messages to ``topic``; outputs their sources as handed over."""

    def __init__(
        self, connection: KafkaConnection, topic: str, expansion_service: JavaJarExpansionService
    ):
        super().__init__()
        self._connection = connection
        self._topic = topic
        self._expansion_service = expansion_service

    def expand(self, outgoing: beam.PCollection[Outgoing]) -> dict[str, beam.PCollection]:
        (
            outgoing
            | 'Messages' >> beam.FlatMap(_messages).with_output_types(tuple[bytes, bytes])
            | 'KafkaIO'
            >> WriteToKafka(
                producer_config={**java_client_config(self._connection, 'writer'), 'acks': 'all'},
                topic=self._topic,
                expansion_service=self._expansion_service,
            )
        )
        ended = outgoing | 'HandedOver' >> beam.FlatMap(_handed_over).with_output_types(
            EndedOffsets
        )
        failed = outgoing.pipeline | 'NoFailures' >> beam.Create([]).with_output_types(FailedWrite)
        return {ENDED: ended, FAILED: failed}
