"""PublishPredictions and PublishDeadLetters: the pipeline's two outputs.

PublishPredictions
  In:  PCollection[tuple[FocusEvent, CouponPrediction]].
  Out: one prediction-result message per coupon on the prediction topic,
       keyed by customer_id, carrying ``focus_event_id`` for de-duplication.
  Metrics: ``predictions.written`` and ``predictions.focus_to_prediction_ms``
       (wall clock from reading the focus event to handing its prediction to
       the producer), also as bucket counters for percentiles.
PublishDeadLetters
  In:  PCollection[DeadLetter].  Out: one record per letter on the dead-letter topic.
State: none (the writer's producer: see transforms.kafka_io).
"""
from __future__ import annotations

import time
from typing import Callable

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.domain import CouponPrediction, DeadLetter, FocusEvent
from transforms.latency import LatencyHistogram
from transforms.messages import KafkaMessage, dead_letter_message, prediction_result_message


class _FormatPredictionFn(beam.DoFn):

  def setup(self) -> None:
    self._written = Metrics.counter('predictions', 'written')
    self._latency = LatencyHistogram('predictions', 'focus_to_prediction_ms')

  def process(self, chosen: tuple[FocusEvent, CouponPrediction]):
    focus, coupon = chosen
    self._written.inc()
    self._latency.update((time.time() - focus.read_at_s) * 1000)
    yield prediction_result_message(focus, coupon)


Writer = Callable[[str], beam.PTransform]


class PublishPredictions(beam.PTransform):
  """Formats and writes the prediction results."""

  def __init__(self, write_to: Writer, topic: str):
    super().__init__()
    self._write_to = write_to
    self._topic = topic

  def expand(self, chosen: beam.PCollection[tuple[FocusEvent, CouponPrediction]]):
    return (chosen
            | 'FormatPredictionResult' >> beam.ParDo(_FormatPredictionFn())
            | 'WritePredictions' >> self._write_to(self._topic))


class PublishDeadLetters(beam.PTransform):
  """Formats and writes the dead letters of every stage."""

  def __init__(self, write_to: Writer, topic: str):
    super().__init__()
    self._write_to = write_to
    self._topic = topic

  def expand(self, letters: beam.PCollection[DeadLetter]):
    return (letters
            | 'FormatDeadLetter' >> beam.Map(dead_letter_message).with_output_types(KafkaMessage)
            | 'WriteDeadLetters' >> self._write_to(self._topic))
