"""WriteMessageFiles: the Kafka writer's contract, to files: where a job on the past (a
replay) puts what the live pipeline would have published.

In:  PCollection[Outgoing] (each with the messages of one source record).
Out: the message values, one JSON document per line, in ``<directory>/<name>.jsonl`` (one
     file, written when the bounded job ends); then, as ``WriteKafkaMessages`` does,
     ``ended``: PCollection[EndedOffsets], the sources handed to the file, and ``failed``:
     PCollection[FailedWrite], always empty (a file that cannot be written fails the job).
State: none.
"""

from __future__ import annotations

import os
from typing import Iterator

import apache_beam as beam

from transforms.domain import EndedOffsets, FailedWrite, Outgoing
from transforms.kafka import ENDED, FAILED


def _values(outgoing: Outgoing) -> Iterator[str]:
    for _, value in outgoing.messages:
        yield value.decode('utf-8')


def _ended(outgoing: Outgoing) -> Iterator[EndedOffsets]:
    if outgoing.source is not None:
        yield EndedOffsets.of(outgoing.source)


def _none_failed(outgoing: Outgoing) -> Iterator[FailedWrite]:
    return iter(())


class WriteLines(beam.PTransform):
    """Writes each text as a line of the one file ``<directory>/<name>.jsonl``."""

    def __init__(self, directory: str, name: str):
        super().__init__()
        self._path = os.path.join(directory, f'{name}.jsonl')

    def expand(self, lines: beam.PCollection[str]) -> beam.pvalue.PDone:
        return lines | 'WriteToText' >> beam.io.WriteToText(self._path, shard_name_template='')


class WriteMessageFiles(beam.PTransform):
    """Writes each message's value as a line of ``<directory>/<name>.jsonl``."""

    def __init__(self, directory: str, name: str):
        super().__init__()
        self._directory = directory
        self._name = name

    def expand(self, outgoing: beam.PCollection[Outgoing]) -> dict[str, beam.PCollection]:
        _ = (
            outgoing
            | 'Values' >> beam.FlatMap(_values).with_output_types(str)
            | 'WriteLines' >> WriteLines(self._directory, self._name)
        )
        return {
            ENDED: outgoing | 'Ended' >> beam.FlatMap(_ended).with_output_types(EndedOffsets),
            FAILED: outgoing
            | 'Failed' >> beam.FlatMap(_none_failed).with_output_types(FailedWrite),
        }
