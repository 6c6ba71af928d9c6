"""The Kafka edge: what the pipeline reads from Kafka, writes to it, and commits.

What it offers the pipeline (``pipeline/wiring.py`` imports only from here):

- read: ``ReadKafkaRecords`` (PBegin -> ``records``, ``gaps``, ``undecodable``), forever;
  ``ReadKafkaSpans`` (``bounded``), given offset spans once, for jobs on the past, with
  ``spans_between`` (the offsets of a time range), ``first_offsets``, and ``read_spans``
  (a few records, read by a driver);
- write: ``WriteKafkaMessages`` (Outgoing -> ``ended``, ``failed``);
- commit: ``CommitEndedOffsets`` and ``CommitOnAcknowledgement``: a partition's offset is
  committed to the consumer group once every record before it has ended;
- drain: ``progress`` / ``RunProgress``: what a stop waits for (read, not yet committed);
- ``KafkaConnection`` (``connection``): the settings every client is built from.

Which connector does what (``KAFKA_IO``, chosen in ``seam``):

- ``python_io`` (``python``, the default): kafka-python in the Python SDK harness; the read
  is a splittable DoFn per partition over one shared consumer per process (``fetcher``),
  fed by ``partitions`` (partitions added while running); the writer outputs what the
  broker acknowledged.
- ``xlang_io`` (``xlang``): Beam's cross-language Java KafkaIO, for Flink and other portable
  runners.
- ``offsets`` and ``commit_metadata``: the commit frontier, and the ranges ended beyond it
  that each commit carries; ``drain``: a run's progress in this process.
- ``ledger`` (``SkipEndedRecords``): with KafkaIO's read on Flink and ENDED_LEDGER=on, the
  frontier is committed to ``<GROUP_ID>.ended``, and a restore from a checkpoint skips the
  focus events it records as ended.
"""

from transforms.kafka.bounded import ReadKafkaSpans, TimeRange, read_spans
from transforms.kafka.connection import (
    STARTUP_BROKER_WAIT_MS,
    KafkaConnection,
    OffsetSpan,
    SpansBetween,
    described_partitions,
    first_offsets,
    list_partitions,
    spans_between,
)
from transforms.kafka.drain import RunProgress, progress
from transforms.kafka.ledger import SkipEndedRecords, ledger_connection
from transforms.kafka.offsets import CommitEndedOffsets, CommitOnAcknowledgement
from transforms.kafka.python_io import ENDED, FAILED
from transforms.kafka.seam import ReadKafkaRecords, WriteKafkaMessages

__all__ = [
    'ENDED',
    'FAILED',
    'STARTUP_BROKER_WAIT_MS',
    'CommitEndedOffsets',
    'CommitOnAcknowledgement',
    'KafkaConnection',
    'OffsetSpan',
    'ReadKafkaRecords',
    'ReadKafkaSpans',
    'RunProgress',
    'SkipEndedRecords',
    'SpansBetween',
    'TimeRange',
    'WriteKafkaMessages',
    'described_partitions',
    'first_offsets',
    'ledger_connection',
    'list_partitions',
    'progress',
    'read_spans',
    'spans_between',
]
