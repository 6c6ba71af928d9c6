"""PublishPredictions and PublishDeadLetters: the pipeline's two outputs.

PublishPredictions
  In:  PCollection[tuple[FocusEvent, tuple[CouponPrediction, ...]]].
  Out: one prediction-result message per coupon on the prediction topic,
       keyed by customer_id, carrying ``focus_event_id`` for de-duplication,
       the messages of a focus event written together; then ``ended``:
       PCollection[EndedOffsets], the focus events whose results were acknowledged, and
       ``dead_letters``: PCollection[DeadLetter], ``publish_failed`` for results the
       broker refused or that could not be written within KAFKA_WRITE_TIMEOUT_SECONDS
       (the original: the result messages, one per line).
  Metrics: ``predictions.written`` and ``predictions.focus_to_prediction_ms``
       (wall clock from reading the focus event to handing its prediction to
       the producer), also as bucket counters for percentiles.
PublishDeadLetters
  In:  PCollection[DeadLetter].  Out: one record per letter on the dead-letter topic,
       bounded in size (transforms.messages); then PCollection[EndedOffsets]: the sources
       of the letters written, and of those the broker refused too: those are dropped,
       counted in ``dead_letters.dropped`` and logged with their source position, so that
       nothing can stop the pipeline or hold its offsets back.
State: none (the writer's producer: see transforms.kafka.seam).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.domain import (
    CouponPrediction,
    DeadLetter,
    EndedOffsets,
    FailedWrite,
    FocusEvent,
    Outgoing,
)
from transforms.kafka import ENDED, FAILED
from transforms.latency import LatencyHistogram
from transforms.messages import dead_letter_message, prediction_result_message

_LOGGER = logging.getLogger(__name__)


class _FormatPredictionFn(beam.DoFn):
    def setup(self) -> None:
        self._written = Metrics.counter('predictions', 'written')
        self._latency = LatencyHistogram('predictions', 'focus_to_prediction_ms')

    def process(
        self, chosen: tuple[FocusEvent, tuple[CouponPrediction, ...]]
    ) -> Iterator[Outgoing]:
        focus, coupons = chosen
        self._written.inc(len(coupons))
        latency_ms = (time.time() - focus.read_at_s) * 1000
        for _ in coupons:  # the metric is per prediction result
            self._latency.update(latency_ms)
        yield Outgoing(focus.source, tuple(prediction_result_message(focus, c) for c in coupons))


def _dead_letter_outgoing(letter: DeadLetter, max_original_bytes: int) -> Outgoing:
    return Outgoing(letter.source, (dead_letter_message(letter, max_original_bytes),))


def _publish_failed(failed: FailedWrite) -> DeadLetter:
    Metrics.counter('dead_letters', 'publish_failed').inc()
    original = b'\n'.join(value for _, value in failed.outgoing.messages)
    return DeadLetter('publish_failed', failed.error, failed.outgoing.source, original)


def _dropped(failed: FailedWrite) -> Iterator[EndedOffsets]:
    """A dead letter the broker refused: logged, counted, and its source ended."""
    Metrics.counter('dead_letters', 'dropped').inc()
    source = failed.outgoing.source
    _LOGGER.error(
        'dead letter dropped, the dead-letter topic refused it: source %s: %s',
        source.event_id if source else None,
        failed.error,
    )
    if source is not None:
        yield EndedOffsets.of(source)


Writer = Callable[[str], beam.PTransform]


class PublishPredictions(beam.PTransform):
    """Formats and writes the prediction results."""

    def __init__(self, write_to: Writer, topic: str):
        super().__init__()
        self._write_to = write_to
        self._topic = topic

    def expand(
        self, chosen: beam.PCollection[tuple[FocusEvent, tuple[CouponPrediction, ...]]]
    ) -> dict[str, beam.PCollection]:
        written = (
            chosen
            | 'FormatPredictionResult' >> beam.ParDo(_FormatPredictionFn())
            | 'WritePredictions' >> self._write_to(self._topic)
        )
        dead_letters = written[FAILED] | 'PublishFailed' >> beam.Map(
            _publish_failed
        ).with_output_types(DeadLetter)
        return {ENDED: written[ENDED], 'dead_letters': dead_letters}


class PublishDeadLetters(beam.PTransform):
    """Formats and writes the dead letters of every stage."""

    def __init__(self, write_to: Writer, topic: str, max_original_bytes: int):
        super().__init__()
        self._write_to = write_to
        self._topic = topic
        self._max_original_bytes = max_original_bytes

    def expand(self, letters: beam.PCollection[DeadLetter]) -> beam.PCollection[EndedOffsets]:
        written = (
            letters
            | 'FormatDeadLetter'
            >> beam.Map(_dead_letter_outgoing, self._max_original_bytes).with_output_types(Outgoing)
            | 'WriteDeadLetters' >> self._write_to(self._topic)
        )
        dropped = written[FAILED] | 'DropRefused' >> beam.FlatMap(_dropped).with_output_types(
            EndedOffsets
        )
        return (written[ENDED], dropped) | 'WrittenOrDropped' >> beam.Flatten()
