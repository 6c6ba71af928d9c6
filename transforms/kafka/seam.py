"""The Kafka seam: the one place that decides which Kafka connector runs.

``ReadKafkaRecords`` (PBegin -> ``records``: PCollection[KafkaRecord] timestamped with the
Kafka record timestamp, ``gaps``: PCollection[EndedOffsets], and ``undecodable``:
PCollection[UndecodableBatch], what the client could not decode) and ``WriteKafkaMessages``
(PCollection[Outgoing] -> topic, then ``ended``: PCollection[EndedOffsets] of the sources
written, and ``failed``: PCollection[FailedWrite], what the broker refused) are what the
pipeline applies. ``KAFKA_IO`` (``--kafka_io``) chooses the connector:

- ``python`` (no expansion service given): ``transforms.kafka.python_io``, kafka-python in
  the Python SDK harness; the sources come out once the broker acknowledged them, a
  refused or timed-out write as ``failed``.
- ``xlang`` (an expansion service given): ``transforms.kafka.xlang_io``, Beam's
  cross-language ``ReadFromKafka`` / ``WriteToKafka`` (Java KafkaIO), meant for Flink and
  other portable runners; ``gaps`` is empty, and the sources come out once handed to the
  writer, not once acknowledged (see that module).

State: none here; the connectors' own.
"""

from __future__ import annotations

from typing import Optional

import apache_beam as beam
from apache_beam.transforms.external import JavaJarExpansionService

from transforms.domain import Outgoing
from transforms.kafka.connection import KafkaConnection
from transforms.kafka.python_io import Acknowledged, ReadFromKafkaPython, WriteToKafkaPython
from transforms.kafka.xlang_io import ReadFromKafkaXlang, WriteToKafkaXlang


class ReadKafkaRecords(beam.PTransform):
    """Reads ``topics`` forever: ``records``, ``gaps`` (offsets without a record) and
    ``undecodable`` (ranges that could not be decoded, skipped). ``partition_discovery_s``:
    how often the Python connector looks for partitions added while it runs (the xlang
    connector does not). ``commit_on_checkpoint``: KafkaIO commits the group's offsets when
    the runner finalizes a checkpoint (Flink), and nothing else commits them."""

    def __init__(
        self,
        connection: KafkaConnection,
        topics: list[str],
        run_id: str,
        expansion_service: Optional[JavaJarExpansionService] = None,
        partition_discovery_s: float = 30.0,
        commit_on_checkpoint: bool = False,
    ):
        super().__init__()
        self._connection = connection
        self._topics = topics
        self._run_id = run_id
        self._expansion_service = expansion_service
        self._partition_discovery_s = partition_discovery_s
        self._commit_on_checkpoint = commit_on_checkpoint

    def expand(self, begin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        if self._expansion_service is None:
            return begin | 'ReadFromKafka' >> ReadFromKafkaPython(
                self._connection, self._topics, self._run_id, self._partition_discovery_s
            )
        return begin | 'ReadFromKafkaXlang' >> ReadFromKafkaXlang(
            self._connection, self._topics, self._expansion_service, self._commit_on_checkpoint
        )


class WriteKafkaMessages(beam.PTransform):
    """Writes each Outgoing's messages to ``topic``: ``ended`` (the EndedOffsets of their
    sources) and ``failed`` (FailedWrite). ``on_acknowledged``: the Python connector hands
    it the acknowledged sources instead of outputting them (see WriteToKafkaPython)."""

    def __init__(
        self,
        connection: KafkaConnection,
        topic: str,
        expansion_service: Optional[JavaJarExpansionService] = None,
        on_acknowledged: Optional[Acknowledged] = None,
    ):
        super().__init__()
        self._connection = connection
        self._topic = topic
        self._expansion_service = expansion_service
        self._on_acknowledged = on_acknowledged

    def expand(self, outgoing: beam.PCollection[Outgoing]) -> dict[str, beam.PCollection]:
        if self._expansion_service is None:
            return outgoing | 'WriteToKafka' >> WriteToKafkaPython(
                self._connection, self._topic, self._on_acknowledged
            )
        return outgoing | 'WriteToKafkaXlang' >> WriteToKafkaXlang(
            self._connection, self._topic, self._expansion_service
        )
