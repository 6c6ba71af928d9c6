"""The coupon-scoring pipeline, wired like its diagram:

  entry + focus topics ── ReadKafkaRecords
      (KafkaIO's read on Flink, ENDED_LEDGER=on: ── SkipPublishedFocusEvents)
      (what the client cannot decode ── UndecodableBatches: dead letters)
      ── CouponScoring (transforms.coupon_scoring: parse, customer sessions, coupons,
         scoring, selection) ── PublishPredictions
  dead letters of every stage (and refused predictions) ── PublishDeadLetters
  every record's end (published, stored, nothing to publish) ── CommitEndedOffsets
    (with one worker process, what a Kafka writer published is committed by the writer
    itself, at once; with several, by partition in a keyed step)

KAFKA_IO=xlang puts Java KafkaIO behind the Kafka seam both ways, xlang-read for the read
only: one expansion-service JVM serves every Java Kafka transform, and runs only while the
pipeline is built (expansion happens then). On Flink KafkaIO's read is a native Flink source
whose offsets live in Flink's checkpoints: KafkaIO commits them to the group when a
checkpoint completes; a restore repeats what came after the checkpoint. With
ENDED_LEDGER=on and the Python writer, CommitEndedOffsets commits to the ended ledger,
``<GROUP_ID>.ended``, and SkipPublishedFocusEvents (transforms.kafka.ledger) skips, after a
restore, the focus events that ledger records as ended.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import uuid
from typing import Iterator, Optional

import apache_beam as beam
from apache_beam.transforms.external import JavaJarExpansionService

from pipeline.options import Settings
from pipeline.runner import on_flink, one_worker_process
from pipeline.xlang.runtime import expansion_service
from transforms.central import CentralConfig
from transforms.coupon_scoring import CouponScoring, ScoringConfig
from transforms.domain import DeadLetter
from transforms.kafka import (
    CommitEndedOffsets,
    CommitOnAcknowledgement,
    KafkaConnection,
    ReadKafkaRecords,
    SkipEndedRecords,
    WriteKafkaMessages,
    ledger_connection,
)
from transforms.messages import undecodable_dead_letter
from transforms.publish import PublishDeadLetters, PublishPredictions
from transforms.quarantine import FailureJournal
from transforms.scoring import ScorerConfig
from transforms.session import SessionConfig


def kafka_connection(settings: Settings) -> KafkaConnection:
    """The connection every Kafka client (reader, metadata, committer, writer) is built from."""
    config = settings.kafka_client_config()
    password = config.pop('sasl_plain_password', None)
    return KafkaConnection(
        client_config=tuple(sorted(config.items())),
        client_id=settings.client_id,
        group_id=settings.group_id,
        auto_offset_reset=settings.auto_offset_reset,
        isolation_level=settings.kafka_isolation_level,
        poll_timeout_ms=settings.poll_timeout_ms,
        watermark_lag_s=settings.watermark_lag_s,
        write_timeout_ms=int(settings.kafka_write_timeout_s * 1000),
        sasl_password=password,
    )


def central_config(settings: Settings) -> CentralConfig:
    return CentralConfig(
        settings.central_url,
        settings.central_timeout_s,
        settings.central_retries,
        settings.central_max_concurrency,
        token=settings.central_token,
    )


def scorer_config(settings: Settings) -> ScorerConfig:
    return ScorerConfig(
        settings.scorer_url,
        settings.scorer_timeout_s,
        settings.scorer_retry_s,
        settings.scorer_max_rows,
        token=settings.scorer_token,
    )


@contextlib.contextmanager
def kafka_expansion_service(
    settings: Settings, native_read: bool = False
) -> Iterator[Optional[JavaJarExpansionService]]:
    """For KAFKA_IO xlang and xlang-read, the expansion service, started once for every Kafka
    transform and stopped on leaving, even on failure (``native_read``: KafkaIO's read as a
    native Flink source); for python, None."""
    if not settings.reads_with_kafkaio:
        yield None
        return
    service = expansion_service(deprecated_read=native_read)
    with service:
        yield service


def build_pipeline(
    p: beam.Pipeline, settings: Settings, journal: Optional[FailureJournal] = None
) -> str:
    """Applies the whole coupon-scoring pipeline to ``p``; returns its run id, the key of its
    progress in this process (transforms.kafka.drain). ``journal``: this start's failure journal,
    whose quarantined records become poison_pill dead letters."""
    run_id = uuid.uuid4().hex
    native_read = settings.reads_with_kafkaio and on_flink(p.options)
    with kafka_expansion_service(settings, native_read) as java:
        run = PipelineRun(run_id, java, journal, one_worker_process(p.options), native_read)
        _apply(p, settings, run)
    return run_id


@dataclasses.dataclass(frozen=True)
class PipelineRun:
    """What one run's transforms share besides the settings."""

    run_id: str
    java: Optional[JavaJarExpansionService]
    journal: Optional[FailureJournal]
    # every Python DoFn runs in this process: the offset frontiers live in its memory
    one_process: bool = True
    # KafkaIO's read is a native Flink source: its offsets live in Flink's checkpoints, and it
    # commits each completed checkpoint's to the group; nothing else commits
    native_read: bool = False

    def quarantined(self, settings: Settings) -> dict[str, str]:
        return self.journal.quarantined(settings.quarantine_after) if self.journal else {}


def scoring_config(settings: Settings) -> ScoringConfig:
    return ScoringConfig(
        entry_topic=settings.entry_topic,
        focus_topic=settings.focus_topic,
        central=central_config(settings),
        scorer=scorer_config(settings),
        session=SessionConfig(settings.context_ttl_s),
        catalogue_refresh_s=settings.catalogue_refresh_s,
        top_k=settings.top_k,
        prediction_threshold=settings.prediction_threshold,
    )


def _apply(p: beam.Pipeline, settings: Settings, run: PipelineRun) -> None:
    kafka = kafka_connection(settings)
    on_checkpoint = bool(settings.group_id) and run.native_read  # KafkaIO commits the group
    # the ended ledger needs acknowledged writes: KafkaIO's writer ends a record once handed
    # over, and a restore would then skip what was never flushed
    ledger = on_checkpoint and settings.ended_ledger == 'on' and not settings.writes_with_kafkaio
    commits = bool(settings.group_id) and not run.native_read
    commit_on_acknowledgement = commits and run.one_process  # else: ended, keyed
    write_to = functools.partial(
        WriteKafkaMessages,
        kafka,
        expansion_service=run.java if settings.writes_with_kafkaio else None,
        on_acknowledged=CommitOnAcknowledgement(kafka, run.run_id)
        if commit_on_acknowledgement
        else None,
    )

    topics = [settings.entry_topic, settings.focus_topic]
    read = p | 'ReadStoreEvents' >> ReadKafkaRecords(
        kafka, topics, run.run_id, run.java, settings.partition_discovery_s, on_checkpoint
    )
    records, gaps = read['records'], read['gaps']
    if ledger:  # after a restore from a checkpoint, what was published is not published again
        unended = records | 'SkipPublishedFocusEvents' >> SkipEndedRecords(
            kafka, topics, once_topics=[settings.focus_topic]
        )
        records = unended['records']
        gaps = (gaps, unended['gaps']) | 'AllGaps' >> beam.Flatten()
    undecodable = read['undecodable'] | 'UndecodableBatches' >> beam.Map(
        undecodable_dead_letter
    ).with_output_types(DeadLetter)
    scoring = records | 'CouponScoring' >> CouponScoring(
        scoring_config(settings), run.journal, run.quarantined(settings)
    )
    published = scoring['chosen'] | 'PublishPredictions' >> PublishPredictions(
        write_to, settings.prediction_topic
    )
    dead_lettered = (
        (undecodable, scoring['dead_letters'], published['dead_letters'])
        | 'AllDeadLetters' >> beam.Flatten()
        | 'PublishDeadLetters'
        >> PublishDeadLetters(
            write_to, settings.dead_letter_topic, settings.dead_letter_max_original_bytes
        )
    )
    if commits or ledger:  # without a consumer group nothing is committed
        (
            (gaps, scoring['ended'], published['ended'], dead_lettered)
            | 'AllEnded' >> beam.Flatten()
            | 'CommitEndedOffsets'
            >> CommitEndedOffsets(
                ledger_connection(kafka) if ledger else kafka,
                run.run_id,
                keyed=not run.one_process,
            )
        )
