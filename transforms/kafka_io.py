"""The Kafka seam: the one place that decides which Kafka connector runs.

``ReadKafkaRecords`` (PBegin -> PCollection[KafkaRecord]) and
``WriteKafkaMessages`` (PCollection[tuple[key, value]] -> topic) are what the
pipeline applies. Today they use the Python-harness connector
(``transforms.kafka_python``), the one that runs on Prism (the
DirectRunner). Beam's cross-language ``apache_beam.io.kafka.ReadFromKafka`` /
``WriteToKafka`` (Java KafkaIO, for Flink) fit the same signatures: their
read yields records with topic, partition, offset, timestamp, key and value
(``with_metadata=True``) that map onto KafkaRecord, and their write takes
(key, value) byte pairs.
"""
from __future__ import annotations

from typing import Optional

import apache_beam as beam

from transforms.domain import KafkaRecord
from transforms.kafka_python import KafkaConnection, ReadFromKafkaPython, WriteToKafkaPython


class ReadKafkaRecords(beam.PTransform):
  """Reads ``topics`` forever, as KafkaRecords stamped with the Kafka timestamp."""

  def __init__(self, connection: KafkaConnection, topics: list[str]):
    super().__init__()
    self._connection = connection
    self._topics = topics

  def expand(self, begin: beam.pvalue.PBegin) -> beam.PCollection[KafkaRecord]:
    return begin | 'ReadFromKafka' >> ReadFromKafkaPython(self._connection, self._topics)


class WriteKafkaMessages(beam.PTransform):
  """Writes (key, value) pairs to ``topic``, acknowledged before the bundle ends."""

  def __init__(self, connection: KafkaConnection, topic: str):
    super().__init__()
    self._connection = connection
    self._topic = topic

  def expand(self, messages: beam.PCollection[tuple[Optional[bytes], bytes]]):
    return messages | 'WriteToKafka' >> WriteToKafkaPython(self._connection, self._topic)
