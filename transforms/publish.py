"""PublishPredictions and PublishDeadLetters: the pipeline's two outputs.

PublishPredictions
  In:  PCollection[tuple[FocusEvent, tuple[CouponPrediction, ...]]].
  Out: one prediction-result message per coupon on the prediction topic,
       keyed by customer_id, carrying ``focus_event_id`` for de-duplication,
       the messages of a focus event written together; then
       PCollection[EndedOffsets]: the focus events whose results were acknowledged.
  Metrics: ``predictions.written`` and ``predictions.focus_to_prediction_ms``
       (wall clock from reading the focus event to handing its prediction to
       the producer), also as bucket counters for percentiles.
PublishDeadLetters
  In:  PCollection[DeadLetter].  Out: one record per letter on the dead-letter topic;
       then PCollection[EndedOffsets]: the sources of the acknowledged letters.
State: none (the writer's producer: see transforms.kafka_io).
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.domain import CouponPrediction, DeadLetter, EndedOffsets, FocusEvent, Outgoing
from transforms.latency import LatencyHistogram
from transforms.messages import dead_letter_message, prediction_result_message


class _FormatPredictionFn(beam.DoFn):

  def setup(self) -> None:
    self._written = Metrics.counter('predictions', 'written')
    self._latency = LatencyHistogram('predictions', 'focus_to_prediction_ms')

  def process(self, chosen: tuple[FocusEvent, tuple[CouponPrediction, ...]]
              ) -> Iterator[Outgoing]:
    focus, coupons = chosen
    self._written.inc(len(coupons))
    latency_ms = (time.time() - focus.read_at_s) * 1000
    for _ in coupons:  # the metric is per prediction result
      self._latency.update(latency_ms)
    yield Outgoing(focus.source, tuple(prediction_result_message(focus, c) for c in coupons))


def _dead_letter_outgoing(letter: DeadLetter) -> Outgoing:
  return Outgoing(letter.source, (dead_letter_message(letter),))


Writer = Callable[[str], beam.PTransform]


class PublishPredictions(beam.PTransform):
  """Formats and writes the prediction results."""

  def __init__(self, write_to: Writer, topic: str):
    super().__init__()
    self._write_to = write_to
    self._topic = topic

  def expand(self, chosen: beam.PCollection[tuple[FocusEvent, tuple[CouponPrediction, ...]]]
             ) -> beam.PCollection[EndedOffsets]:
    return (chosen
            | 'FormatPredictionResult' >> beam.ParDo(_FormatPredictionFn())
            | 'WritePredictions' >> self._write_to(self._topic))


class PublishDeadLetters(beam.PTransform):
  """Formats and writes the dead letters of every stage."""

  def __init__(self, write_to: Writer, topic: str):
    super().__init__()
    self._write_to = write_to
    self._topic = topic

  def expand(self, letters: beam.PCollection[DeadLetter]) -> beam.PCollection[EndedOffsets]:
    return (letters
            | 'FormatDeadLetter' >> beam.Map(_dead_letter_outgoing).with_output_types(Outgoing)
            | 'WriteDeadLetters' >> self._write_to(self._topic))
