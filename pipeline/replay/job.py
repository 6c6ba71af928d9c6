"""The bounded job of a replay or a re-drive, wired like its diagram:

  offset spans of the entry + focus topics ── ReadKafkaSpans
      (what the client cannot decode ── UndecodableBatches: dead letters)
      ── CouponScoring (the live pipeline's transforms, transforms.coupon_scoring)
          chosen  ── PublishPredictions ── predictions (files, and/or a Kafka topic)
          focuses ── ListFocusEvents ── focus_events.jsonl (what the report counts on)
  dead letters of every stage ── PublishDeadLetters ── dead_letters (files or the topic)
  (replay) live prediction topic over the range ── ReadKafkaSpans ── live_predictions.jsonl

Nothing is committed: the job reads no consumer group's offsets and moves none.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from typing import Optional

import apache_beam as beam

from pipeline.options import Settings
from pipeline.wiring import kafka_connection, scoring_config
from transforms.coupon_scoring import CouponScoring
from transforms.domain import DeadLetter, FocusEvent, KafkaRecord
from transforms.kafka import OffsetSpan, ReadKafkaSpans, TimeRange, WriteKafkaMessages
from transforms.message_files import WriteLines, WriteMessageFiles
from transforms.messages import undecodable_dead_letter
from transforms.publish import PublishDeadLetters, PublishPredictions, Writer

PREDICTIONS = 'predictions'
DEAD_LETTERS = 'dead_letters'
FOCUS_EVENTS = 'focus_events'
LIVE_PREDICTIONS = 'live_predictions'


@dataclasses.dataclass(frozen=True)
class Outputs:
    """Where the job writes: a directory of files, Kafka topics, or both."""

    directory: Optional[str] = None
    prediction_topic: Optional[str] = None
    dead_letter_topic: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class JobInput:
    """What the job reads: the spans of the input topics (records of ``times`` only, if
    given) and, for a comparison, the live prediction topic's spans."""

    spans: tuple[OffsetSpan, ...]
    times: Optional[TimeRange] = None
    live_prediction_spans: tuple[OffsetSpan, ...] = ()


def focus_line(focus: FocusEvent) -> str:
    return json.dumps(
        {
            'focus_event_id': focus.focus_id,
            'customer_id': focus.customer_id,
            'department_id': focus.department_id,
            'event_timestamp': focus.event_timestamp,
        }
    )


def _record_value(record: KafkaRecord) -> str:
    return (record.value or b'').decode('utf-8', errors='replace')


def build_job(p: beam.Pipeline, settings: Settings, job: JobInput, outputs: Outputs) -> None:
    """Applies the bounded job to ``p`` (see the module docstring)."""
    kafka = dataclasses.replace(kafka_connection(settings), group_id=None)
    run_id = uuid.uuid4().hex
    read = p | 'ReadTimeRange' >> ReadKafkaSpans(kafka, list(job.spans), run_id, job.times)
    undecodable = read['undecodable'] | 'UndecodableBatches' >> beam.Map(
        undecodable_dead_letter
    ).with_output_types(DeadLetter)
    scoring = read['records'] | 'CouponScoring' >> CouponScoring(scoring_config(settings))
    to_kafka = functools.partial(WriteKafkaMessages, kafka)
    letters = [undecodable, scoring['dead_letters']]
    for label, write_to, name in _prediction_sinks(outputs, to_kafka):
        published = scoring['chosen'] | label >> PublishPredictions(write_to, name)
        letters.append(published['dead_letters'])
    all_letters = letters | 'AllDeadLetters' >> beam.Flatten()
    write_letters, letters_name = _dead_letter_sink(outputs, to_kafka)
    _ = all_letters | 'PublishDeadLetters' >> PublishDeadLetters(
        write_letters, letters_name, settings.dead_letter_max_original_bytes
    )
    if outputs.directory:
        _ = (
            scoring['focuses']
            | 'ListFocusEvents' >> beam.Map(focus_line)
            | 'WriteFocusEvents' >> WriteLines(outputs.directory, FOCUS_EVENTS)
        )
    if job.live_prediction_spans and outputs.directory:
        live = p | 'ReadLivePredictions' >> ReadKafkaSpans(
            kafka, list(job.live_prediction_spans), run_id + '-live'
        )
        _ = (
            live['records']
            | 'LiveValues' >> beam.Map(_record_value)
            | 'WriteLivePredictions' >> WriteLines(outputs.directory, LIVE_PREDICTIONS)
        )


def _prediction_sinks(outputs: Outputs, to_kafka: Writer) -> list[tuple[str, Writer, str]]:
    sinks = []
    if outputs.directory:
        sinks.append(
            (
                'PredictionsToFiles',
                functools.partial(WriteMessageFiles, outputs.directory),
                PREDICTIONS,
            )
        )
    if outputs.prediction_topic:
        sinks.append(('PredictionsToTopic', to_kafka, outputs.prediction_topic))
    return sinks


def _dead_letter_sink(outputs: Outputs, to_kafka: Writer) -> tuple[Writer, str]:
    if outputs.dead_letter_topic:
        return to_kafka, outputs.dead_letter_topic
    return functools.partial(WriteMessageFiles, outputs.directory), DEAD_LETTERS
