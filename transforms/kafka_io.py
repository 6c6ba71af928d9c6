"""The Kafka seam: the one place that decides which Kafka connector runs.

``ReadKafkaRecords`` (PBegin -> ``records``: PCollection[KafkaRecord], and
``gaps``: PCollection[EndedOffsets]) and ``WriteKafkaMessages``
(PCollection[Outgoing] -> topic, then PCollection[EndedOffsets] of the sources
acknowledged) are what the pipeline applies. Today they use the Python-harness connector
(``transforms.kafka_python``), the one that runs on Prism (the
DirectRunner). Beam's cross-language ``apache_beam.io.kafka.ReadFromKafka`` /
``WriteToKafka`` (Java KafkaIO, for Flink) fit the same signatures: their
read yields records with topic, partition, offset, timestamp, key and value
(``with_metadata=True``) that map onto KafkaRecord, and their write takes
(key, value) byte pairs.
"""
from __future__ import annotations

import apache_beam as beam

from transforms.domain import EndedOffsets, Outgoing
from transforms.kafka_python import KafkaConnection, ReadFromKafkaPython, WriteToKafkaPython


class ReadKafkaRecords(beam.PTransform):
  """Reads ``topics`` forever: ``records`` (KafkaRecords stamped with the Kafka
  timestamp) and ``gaps`` (offsets without a record, ended at once)."""

  def __init__(self, connection: KafkaConnection, topics: list[str]):
    super().__init__()
    self._connection = connection
    self._topics = topics

  def expand(self, begin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
    return begin | 'ReadFromKafka' >> ReadFromKafkaPython(self._connection, self._topics)


class WriteKafkaMessages(beam.PTransform):
  """Writes each Outgoing's messages to ``topic``, acknowledged before the bundle ends;
  outputs the EndedOffsets of their sources."""

  def __init__(self, connection: KafkaConnection, topic: str):
    super().__init__()
    self._connection = connection
    self._topic = topic

  def expand(self, outgoing: beam.PCollection[Outgoing]) -> beam.PCollection[EndedOffsets]:
    return outgoing | 'WriteToKafka' >> WriteToKafkaPython(self._connection, self._topic)
