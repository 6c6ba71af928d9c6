"""python -m bench.floor --runner=DirectRunner: the runner's floor for the pipeline's shape.

What caps the pipeline's latency and CPU on Prism: its own work, or the runner under a job of
its shape? This is a Beam job of that shape with no domain work, run as the pipeline runs
(``pipeline.runner.route_runner``: the same Prism binary and options; the same settings from
the same environment variables, ``pipeline.options``), so that the bench can measure it
beside the pipeline (``bench.systems.FLOOR``, ``python -m bench --only pipeline,floor``):

  entry + focus topics ── ReadKafkaRecords (the python connector, ``pipeline.wiring.kafka_connection``)
    ── KeyByCustomer: the customer_id out of the JSON (nothing else is parsed or checked)
    ── CustomerMarker: stateful, keyed by customer_id, one state cell read and written per
       element (an entry stores a marker, a focus event reads it)
    ── ScorePerBundle: one POST per bundle to the scorer with one row per focus event
    ── WriteKafkaMessages: one output message per focus event, with its ``focus_event_id``
  every record's end (entry stored, unreadable record, gap) ── CommitEndedOffsets; the writer
  commits what the broker acknowledged (``CommitOnAcknowledgement``), as the pipeline does

Left out, compared with the pipeline: parsing and validation (schemas, timestamps), dead
letters, the central (no context is fetched: neither on entry nor on focus), the coupon
catalogue (one scorer row per focus event instead of one per coupon of its department), the
session's expiry timer, RunInference (batching, retries, throttling), the selection (top k,
threshold): every focus event with a customer_id gets exactly one output, so none is
"without output". Also left out: the group lease, the failure journal, the metrics reports
and the operator's endpoints of ``python -m pipeline``, the drain on stop (SIGINT or SIGTERM
cancel the job at once), KAFKA_IO=xlang and Flink (the python connector on Prism only).

It logs ``pipeline reading`` once its read polls Kafka, as the pipeline does (what
``tests.integration.harness.start_pipeline`` waits for).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
import typing
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam import coders
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.utils.windowed_value import WindowedValue

from pipeline.__main__ import announce_reading, configure_logging, take_back_ctrl_c
from pipeline.options import ConfigError, Settings, resolve_settings
from pipeline.runner import route_runner
from pipeline.wiring import kafka_connection, scorer_config
from transforms.domain import EndedOffsets, KafkaRecord, Outgoing
from transforms.kafka import (
    CommitEndedOffsets,
    CommitOnAcknowledgement,
    ReadKafkaRecords,
    WriteKafkaMessages,
    progress,
)
from transforms.messages import PREDICTION_EVENT_TYPE, KafkaMessage
from transforms.scoring import ScorerConfig, scorer_session

_LOGGER = logging.getLogger('bench.floor')
KEYED, ENDED = 'keyed', 'ended'
STATE_CHECK_S = 1.0
Keyed = tuple[int, KafkaRecord]  # customer_id, the record


def customer_id_of(value: bytes | None) -> int | None:
    """``payload.customer_id`` of a store event's JSON value, if it is an integer the state's
    key coder takes (64 bits); else None (no value, not JSON, not UTF-8, no payload, an id of
    another type)."""
    try:
        customer_id = json.loads(value)['payload']['customer_id']
    except (TypeError, ValueError, KeyError):  # ValueError: not JSON, not UTF-8
        return None
    return customer_id if type(customer_id) is int and abs(customer_id) < 2**63 else None


def scorer_row(customer_id: int) -> dict[str, Any]:
    """A focus event's one scorer row: the scorer takes any object (what it lacks scores 0)."""
    return {'customer_id': customer_id}


def floor_message(record: KafkaRecord, customer_id: int, prediction: float) -> KafkaMessage:
    """The output of one focus event, keyed by customer_id: a prediction result in shape (its
    ``focus_event_id`` is what the bench's probe measures by), with no coupon."""
    message = {
        'event_type': PREDICTION_EVENT_TYPE,
        'focus_event_id': record.position.event_id,
        'payload': {'customer_id': customer_id, 'prediction': prediction},
    }
    return str(customer_id).encode(), json.dumps(message, separators=(',', ':')).encode()


class _KeyByCustomerFn(beam.DoFn):
    """KafkaRecord in; (customer_id, record) out, or the record's offset as ``ended`` when it
    has no customer_id (so that its partition's commits go on). No state."""

    def process(self, record: KafkaRecord) -> Iterator[Any]:
        customer_id = customer_id_of(record.value)
        if customer_id is None:
            yield beam.pvalue.TaggedOutput(ENDED, EndedOffsets.of(record.position))
            return
        yield customer_id, record


class _CustomerMarkerFn(beam.DoFn):
    """(customer_id, record) in; a focus record passes on as (customer_id, record), an entry
    ends here (``ended``). State, per customer_id: one cell, read and written for every
    element, as the pipeline's session cell: an entry sets it, a focus event reads it and
    writes it back."""

    ENTERED = ReadModifyWriteStateSpec('entered', coders.BooleanCoder())

    def __init__(self, focus_topic: str):
        self._focus_topic = focus_topic

    def process(self, keyed: Keyed, entered=beam.DoFn.StateParam(ENTERED)) -> Iterator[Any]:
        _, record = keyed
        marker = bool(entered.read())
        if record.topic == self._focus_topic:
            entered.write(marker)
            yield keyed
        else:
            entered.write(True)
            yield beam.pvalue.TaggedOutput(ENDED, EndedOffsets.of(record.position))


class _ScorePerBundleFn(beam.DoFn):
    """(customer_id, focus record) in; an Outgoing with the focus event's one message out, at
    the end of the bundle, after one scorer request with every focus event of the bundle (a
    failed request fails the bundle: the runner retries it). State: the bundle's focus events;
    one keep-alive session per DoFn instance."""

    def __init__(self, config: ScorerConfig):
        self._config = config

    def setup(self) -> None:
        self._session = scorer_session(self._config)

    def start_bundle(self) -> None:
        self._focuses: list[WindowedValue] = []

    def process(
        self, keyed: Keyed, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam
    ) -> None:
        self._focuses.append(WindowedValue(keyed, timestamp, [window]))

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if not self._focuses:
            return
        predictions = self._score([scorer_row(focus.value[0]) for focus in self._focuses])
        for focus, prediction in zip(self._focuses, predictions):
            customer_id, record = focus.value
            message = floor_message(record, customer_id, prediction)
            yield focus.with_value(Outgoing(record.position, (message,)))

    def _score(self, rows: list[dict[str, Any]]) -> list[float]:
        response = self._session.post(
            self._config.url, json={'instances': rows}, timeout=self._config.timeout_s
        )
        response.raise_for_status()
        return response.json()['predictions']

    def teardown(self) -> None:
        self._session.close()


def build_floor(p: beam.Pipeline, settings: Settings, run_id: str) -> None:
    """Applies the floor job to ``p`` (see the module docstring); ``run_id``: the key of its
    read's progress and of its commit frontiers in this process."""
    kafka = kafka_connection(settings)
    commits = bool(settings.group_id)  # without a consumer group nothing is committed
    read = p | 'ReadStoreEvents' >> ReadKafkaRecords(
        kafka,
        [settings.entry_topic, settings.focus_topic],
        run_id,
        partition_discovery_s=settings.partition_discovery_s,
    )
    keyed = read['records'] | 'KeyByCustomer' >> beam.ParDo(_KeyByCustomerFn()).with_output_types(
        beam.typehints.KV[int, typing.Any]  # an int key coder for the state's keys
    ).with_outputs(ENDED, main=KEYED)
    marked = keyed[KEYED] | 'CustomerMarker' >> beam.ParDo(
        _CustomerMarkerFn(settings.focus_topic)
    ).with_outputs(ENDED, main='focuses')
    (
        marked.focuses
        | 'ScorePerBundle' >> beam.ParDo(_ScorePerBundleFn(scorer_config(settings)))
        | 'WritePredictions'
        >> WriteKafkaMessages(
            kafka,
            settings.prediction_topic,
            on_acknowledged=CommitOnAcknowledgement(kafka, run_id) if commits else None,
        )
    )
    if commits:
        (
            (read['gaps'], keyed[ENDED], marked[ENDED])
            | 'AllEnded' >> beam.Flatten()
            | 'CommitEndedOffsets' >> CommitEndedOffsets(kafka, run_id)
        )


def run(argv: Sequence[str]) -> int:
    """Runs the floor job until SIGINT or SIGTERM (then cancels it) or until it ends; 2 on a bad
    setting."""
    try:
        settings = resolve_settings(PipelineOptions(argv))
    except ConfigError as error:
        print(f'bench.floor: configuration error: {error}', file=sys.stderr)
        return 2
    options = route_runner(PipelineOptions(argv))
    p = beam.Pipeline(options=options)
    run_id = uuid.uuid4().hex
    build_floor(p, settings, run_id)
    result = p.run()
    take_back_ctrl_c()  # Beam's job server stops Prism at once on SIGINT: cancel the job instead
    try:
        announce_reading(result, progress(run_id).wait_reading)
        while not PipelineState.is_terminal(result.state):
            time.sleep(STATE_CHECK_S)
    except KeyboardInterrupt as stop:
        _LOGGER.info('stopping the floor job (%s)', stop or 'SIGINT')
        result.cancel()
    _LOGGER.info('floor job %s', result.state)
    return 0


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop, as Ctrl-C
    configure_logging()
    sys.exit(run(sys.argv[1:]))


if __name__ == '__main__':
    main()
