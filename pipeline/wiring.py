"""The coupon-scoring pipeline, wired like its diagram:

  entry + focus topics ── ReadKafkaRecords ── ParseStoreEvents
      entries ── FetchCustomerContext ──┐
      focuses ──────────────────────────┴── CustomerSessions (keyed by customer)
          ── AttachCandidateCoupons ── ScoreCoupons ── SelectTopCoupons
          ── PublishPredictions
  dead letters of every stage ── PublishDeadLetters
  every record's end (published, stored, nothing to publish) ── CommitEndedOffsets
"""
from __future__ import annotations

import apache_beam as beam

from pipeline.options import Settings
from transforms.central import CentralConfig
from transforms.context import FetchCustomerContext
from transforms.coupons import AttachCandidateCoupons
from transforms.events import ParseStoreEvents
from transforms.kafka_io import ReadKafkaRecords, WriteKafkaMessages
from transforms.kafka_python import KafkaConnection
from transforms.offsets import CommitEndedOffsets
from transforms.publish import PublishDeadLetters, PublishPredictions
from transforms.scoring import ScoreCoupons, ScorerConfig
from transforms.selection import SelectTopCoupons
from transforms.session import CustomerSessions, SessionConfig


def kafka_connection(settings: Settings) -> KafkaConnection:
  """The connection every Kafka client (reader, metadata, committer, writer) is built from."""
  config = settings.kafka_client_config()
  password = config.pop('sasl_plain_password', None)
  return KafkaConnection(
      client_config=tuple(sorted(config.items())),
      client_id=settings.client_id, group_id=settings.group_id,
      auto_offset_reset=settings.auto_offset_reset,
      poll_timeout_ms=settings.poll_timeout_ms,
      watermark_lag_s=settings.watermark_lag_s,
      sasl_password=password)


def central_config(settings: Settings) -> CentralConfig:
  return CentralConfig(settings.central_url, settings.central_timeout_s,
                       settings.central_retries, settings.central_max_concurrency,
                       token=settings.central_token)


def scorer_config(settings: Settings) -> ScorerConfig:
  return ScorerConfig(settings.scorer_url, settings.scorer_timeout_s,
                      settings.scorer_retry_s, settings.scorer_max_rows,
                      token=settings.scorer_token)


def build_pipeline(p: beam.Pipeline, settings: Settings) -> None:
  """Applies the whole coupon-scoring pipeline to ``p``."""
  kafka = kafka_connection(settings)
  central = central_config(settings)
  write_to = lambda topic: WriteKafkaMessages(kafka, topic)

  read = p | 'ReadStoreEvents' >> ReadKafkaRecords(
      kafka, [settings.entry_topic, settings.focus_topic])
  events = read['records'] | 'ParseStoreEvents' >> ParseStoreEvents(settings.entry_topic,
                                                                    settings.focus_topic)
  entry_contexts = events.entries | 'FetchContextOnEntry' >> FetchCustomerContext(central)
  sessions = ({'entries': entry_contexts.contexts, 'focuses': events.focuses}
              | 'CustomerSessions' >> CustomerSessions(
                  SessionConfig(settings.context_ttl_s), central))
  candidates = sessions['ready'] | 'AttachCandidateCoupons' >> AttachCandidateCoupons(
      central, settings.catalogue_refresh_s)
  scored = candidates.enriched | 'ScoreCoupons' >> ScoreCoupons(scorer_config(settings))
  selected = scored['scored'] | 'SelectTopCoupons' >> SelectTopCoupons(
      settings.top_k, settings.prediction_threshold)
  published = selected.chosen | 'PublishPredictions' >> PublishPredictions(
      write_to, settings.prediction_topic)
  dead_lettered = ((events.dead_letters, entry_contexts.dead_letters, candidates.dead_letters,
                    scored['dead_letters'])
                   | 'AllDeadLetters' >> beam.Flatten()
                   | 'PublishDeadLetters' >> PublishDeadLetters(
                       write_to, settings.dead_letter_topic))
  if settings.group_id:  # without a consumer group nothing is committed
    ((read['gaps'], sessions['entries_ended'], selected.ended, published, dead_lettered)
     | 'AllEnded' >> beam.Flatten()
     | 'CommitEndedOffsets' >> CommitEndedOffsets(kafka))
