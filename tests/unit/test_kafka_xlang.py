"""The cross-language Kafka connector's Python side: KafkaIO rows as KafkaRecords, and the
Java client configuration built from a KafkaConnection."""

from __future__ import annotations

import apache_beam as beam

from transforms.domain import KafkaRecord
from transforms.kafka.connection import KafkaConnection
from transforms.kafka.xlang_io import consumer_config, java_client_config, to_kafka_record


def metadata_row(**changes) -> beam.Row:
    """A row as ReadFromKafka(with_metadata=True) yields it."""
    fields = dict(
        topic='store.focus',
        partition=2,
        offset=117,
        timestamp=1_700_000_000_123,
        timestampTypeId=0,
        timestampTypeName='CreateTime',
        key=b'42',
        value=b'{}',
        headers=[beam.Row(key='trace', value=b'abc'), beam.Row(key='empty', value=None)],
    )
    fields.update(changes)
    return beam.Row(**fields)


def connection() -> KafkaConnection:
    config = {'bootstrap_servers': ['b1:9092', 'b2:9092'], 'security_protocol': 'PLAINTEXT'}
    return KafkaConnection(
        client_config=tuple(sorted(config.items())),
        client_id='scoring',
        group_id='scorers',
        auto_offset_reset='earliest',
    )


def test_metadata_row_becomes_the_kafka_record_with_its_position_and_timestamp():
    record = to_kafka_record(metadata_row())

    assert record == KafkaRecord(
        topic='store.focus',
        partition=2,
        offset=117,
        key=b'42',
        value=b'{}',
        timestamp_ms=1_700_000_000_123,
        headers=(('trace', b'abc'), ('empty', b'')),
    )
    assert record.position.event_id == 'store.focus/2/117'


def test_row_without_key_value_or_headers_keeps_them_absent():
    record = to_kafka_record(metadata_row(key=None, value=None, headers=None))

    assert (record.key, record.value, record.headers) == (None, None, ())


def test_consumer_config_reads_with_the_group_and_commits_nothing_itself():
    config = consumer_config(connection())

    assert config == {
        'bootstrap.servers': 'b1:9092,b2:9092',
        'security.protocol': 'PLAINTEXT',
        'client.id': 'scoring-reader',
        'group.id': 'scorers',
        'enable.auto.commit': 'false',
        'auto.offset.reset': 'earliest',
        'isolation.level': 'read_committed',
    }


def test_sasl_password_goes_into_the_jaas_config_quoted_and_not_into_the_repr():
    kafka = KafkaConnection(
        client_config=(
            ('bootstrap_servers', ['b:9093']),
            ('sasl_mechanism', 'SCRAM-SHA-512'),
            ('sasl_plain_username', 'scorer'),
            ('security_protocol', 'SASL_SSL'),
        ),
        client_id='scoring',
        sasl_password='p"w\\d',
    )

    config = java_client_config(kafka, 'writer')

    assert config['sasl.mechanism'] == 'SCRAM-SHA-512'
    assert config['sasl.jaas.config'] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required '
        'username="scorer" password="p\\"w\\\\d";'
    )
    assert 'p"w' not in repr(kafka)
