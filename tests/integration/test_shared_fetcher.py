"""The read's shared consumer (transforms.kafka.fetcher) against the real broker: partitions that
hold more than one poll's worth, taken one call at a time as a runner's bundle does.

SharedFetcher pauses a partition while its polled records wait to be taken and resumes it once
they are. kafka-python 3.0.12 loses track of a partition paused in the middle of a fetched batch:
it keeps the rest aside, never hands it back and never fetches that partition again (the read
stalled at exactly one poll's worth, 500 records, in test_faults' flaky-scorer run). This
reads everything with 2.3.3; it is the check a kafka-python upgrade has to pass.
"""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaProducer, TopicPartition

from standins.kafka.broker import KafkaBroker, create_topics
from transforms.kafka import fetcher as kafka_fetcher
from transforms.kafka.connection import KafkaConnection

pytestmark = pytest.mark.integration
PARTITIONS = 6
RECORDS = 5000  # 700 to 1,400 a partition: each more than one poll (max_poll_records 500)
STALLED_AFTER_S = 20


def test_every_record_of_partitions_bigger_than_one_poll_is_read(kafka: KafkaBroker):
    topic = f'it.{uuid.uuid4().hex[:8]}.fetcher'
    create_topics(kafka.bootstrap_servers, [topic], partitions=PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5)
    for i in range(RECORDS):
        producer.send(topic, key=str(i % 7).encode(), value=b'x' * 200)
    producer.flush()
    producer.close()
    connection = KafkaConnection(
        client_config=(('bootstrap_servers', kafka.bootstrap_servers),),
        client_id='it-fetcher',
        group_id=f'it-fetcher-{topic}',
        auto_offset_reset='earliest',
    )
    fetcher = kafka_fetcher.SharedFetcher(lambda: connection.consumer('reader'))
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    next_offset = dict.fromkeys(partitions, 0)
    offsets: dict[TopicPartition, list[int]] = {tp: [] for tp in partitions}
    read, progress_at = 0, time.monotonic()
    try:
        while read < RECORDS and time.monotonic() - progress_at < STALLED_AFTER_S:
            for tp in partitions:
                fetched = fetcher.fetch(tp, next_offset[tp], 100)
                offsets[tp] += [record.offset for record in fetched.records]
                next_offset[tp] = fetched.next_offset
                if fetched.records:
                    read += len(fetched.records)
                    progress_at = time.monotonic()
    finally:
        fetcher.close()

    assert read == RECORDS, f'read stalled at {read} of {RECORDS}: next offsets {next_offset}'
    assert all(offsets[tp] == list(range(len(offsets[tp]))) for tp in partitions)
