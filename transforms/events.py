"""ParseStoreEvents: Kafka records in, validated store events out.

In:  PCollection[KafkaRecord] read from the entry topic and the focus topic.
Out: a tagged result with
     ``entries``      PCollection[EntryEvent],
     ``focuses``      PCollection[FocusEvent],
     ``dead_letters`` PCollection[DeadLetter] (reason, original bytes, source).
     Every event is re-timestamped with its own ``event_timestamp``.
State: none. A record quarantined at start (transforms.quarantine) is a ``poison_pill``
dead letter, not parsed.
Metrics: ``events.read_<topic>`` per record; ``events.focus_read_delay_ms``, a histogram of
what the read adds: from a focus record's Kafka timestamp to its parsing here.

A record is validated against the Avro schema of its topic (``schema/``), with
fastavro, after checks on size, encoding and JSON. Nothing here raises: any
fault becomes a dead letter, so one bad message never stops the pipeline.

Rules beyond the schemas, with the reason each fault gets:

- The value must be JSON as RFC 8259 defines it, in UTF-8. A NUL byte never
  occurs in UTF-8 JSON, so it marks UTF-16 or UTF-32 (``not_utf8``). No value
  (a Kafka tombstone), a UTF-8 byte order mark, ``NaN`` and ``Infinity`` (which
  Python's json would take), a name twice in one object (JSON parsers disagree
  on which wins) and nesting deeper than ``MAX_NESTING_DEPTH`` (RFC 8259 lets a
  parser limit it; the schemas need 2) are ``not_json``.
- Fields the schema does not name are ignored, as Avro schema resolution
  ignores writer fields the reader lacks: producers may add fields.
- An id must be a JSON integer that fits Avro's long: ``1.0``, ``1e3``,
  ``true`` and ``2**63`` are ``schema_mismatch``; a long outside the id's range
  is ``id_out_of_range``.
- Timestamps are ASCII ISO-8601 (see ``parse_event_time``); any other text, or
  a date ``datetime`` cannot hold, is ``bad_timestamp``.
"""

from __future__ import annotations

import collections
import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Iterator, Optional, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from fastavro.validation import ValidationError, validate

import schema
from transforms.domain import DeadLetter, EntryEvent, FocusEvent, KafkaRecord
from transforms.latency import LatencyHistogram

ENTRY_EVENT_TYPE = 'customer entry'
FOCUS_EVENT_TYPE = 'customer focus'
MAX_MESSAGE_BYTES = 16 * 1024
MAX_CUSTOMER_ID = 10**12
MAX_DEPARTMENT_ID = 10**6
MAX_NESTING_DEPTH = 64
_TIMESTAMP = re.compile(
    r'(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?', re.ASCII
)
_BRACKET_OR_STRING = re.compile(r'[][{}]|"(?:[^"\\]|\\.)*"?', re.DOTALL)
_DEPTH_CHANGE = {'[': 1, '{': 1, ']': -1, '}': -1}
_SCHEMA_OF_EVENT_TYPE = {
    ENTRY_EVENT_TYPE: 'customer_entry',
    FOCUS_EVENT_TYPE: 'customer_focus',
}

StoreEvent = Union[EntryEvent, FocusEvent]


class InvalidEvent(ValueError):
    """A record is not a valid store event; ``reason`` names the class of fault."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def parse_event_time(text: str) -> float:
    """Seconds since the epoch of an ISO-8601 timestamp; no zone means UTC.

    Accepts ``2001-12-17T09:30:47.0`` and ``2021-03-18T08:29:02.160Z``, with 1 to
    9 fractional digits (truncated to microseconds) and optional offsets, in
    ASCII digits only.
    """
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        raise InvalidEvent('bad_timestamp', f'event_timestamp {text!r} is not ISO-8601')
    seconds, fraction, zone = match.groups()
    normalized = seconds + (fraction or '')[:7] + ('+00:00' if zone in (None, 'Z') else zone)
    try:
        return datetime.fromisoformat(normalized).astimezone(timezone.utc).timestamp()
    except (ValueError, OverflowError) as error:
        raise InvalidEvent('bad_timestamp', f'event_timestamp {text!r}: {error}') from None


def _decode(record: KafkaRecord) -> dict[str, Any]:
    value = record.value
    if value is None:
        raise InvalidEvent('not_json', 'no value (a tombstone)')
    if len(value) > MAX_MESSAGE_BYTES:
        raise InvalidEvent('too_large', f'{len(value)} bytes > {MAX_MESSAGE_BYTES}')
    text = _utf8_text(value)
    _check_nesting(text)
    try:
        message = json.loads(
            text, parse_constant=_refuse_constant, object_pairs_hook=_object_of_unique_names
        )
    except ValueError as error:
        raise InvalidEvent('not_json', str(error)) from None
    if not isinstance(message, dict):
        raise InvalidEvent('schema_mismatch', 'message is not a JSON object')
    return message


def _utf8_text(value: bytes) -> str:
    if b'\x00' in value:
        raise InvalidEvent('not_utf8', f'NUL byte at {value.index(0)}: UTF-16 or UTF-32?')
    try:
        return value.decode('utf-8')
    except UnicodeDecodeError as error:
        raise InvalidEvent('not_utf8', str(error)) from None


def _check_nesting(text: str) -> None:
    """Refuses deep nesting, on which json would raise RecursionError.

    A stack-independent limit: json's own depends on how deep the caller's stack is.
    Brackets inside strings do not count; only text with many brackets is scanned.
    """
    if text.count('[') + text.count('{') <= MAX_NESTING_DEPTH:
        return
    depth = 0
    for token in _BRACKET_OR_STRING.finditer(text):
        depth += _DEPTH_CHANGE.get(token.group(), 0)
        if depth > MAX_NESTING_DEPTH:
            raise InvalidEvent('not_json', f'nested deeper than {MAX_NESTING_DEPTH} levels')


def _refuse_constant(name: str) -> None:
    raise ValueError(f'{name} is not JSON')


def _object_of_unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        counts = collections.Counter(name for name, _ in pairs)
        twice = sorted(name for name, count in counts.items() if count > 1)
        raise ValueError(f'names given twice in one object: {twice!r:.80}')
    return obj


def _validate(message: dict[str, Any], expected_type: str) -> None:
    event_type = message.get('event_type')
    if not isinstance(event_type, str):
        raise InvalidEvent('schema_mismatch', 'event_type is missing or not a string')
    if event_type not in _SCHEMA_OF_EVENT_TYPE:
        raise InvalidEvent('unknown_event_type', f'event_type {event_type!r}')
    if event_type != expected_type:
        raise InvalidEvent('wrong_topic', f'a {event_type!r} event on the {expected_type!r} topic')
    try:
        validate(message, schema.avro_schema(_SCHEMA_OF_EVENT_TYPE[event_type]), raise_errors=True)
    except ValidationError as error:
        problems = '; '.join(
            f'{e.field}: expected {_type_name(e.schema)}, got {e.datum!r:.40}' for e in error.errors
        )
        raise InvalidEvent('schema_mismatch', problems) from None


def _type_name(avro_type: Any) -> str:
    return (
        avro_type.get('name', avro_type.get('type'))
        if isinstance(avro_type, dict)
        else str(avro_type)
    )


def _checked_id(payload: dict[str, Any], name: str, highest: int) -> int:
    value = payload[name]
    if not 1 <= value <= highest:
        raise InvalidEvent('id_out_of_range', f'{name} {value} not in 1..{highest}')
    return value


def parse_store_event(record: KafkaRecord, expected_type: str) -> StoreEvent:
    """The store event in ``record``, or ``InvalidEvent`` saying what is wrong."""
    message = _decode(record)
    _validate(message, expected_type)
    payload = message['payload']
    customer_id = _checked_id(payload, 'customer_id', MAX_CUSTOMER_ID)
    timestamp = message['event_timestamp']
    event_time_s = parse_event_time(timestamp)
    if expected_type == ENTRY_EVENT_TYPE:
        return EntryEvent(customer_id, timestamp, event_time_s, record.position)
    department_id = _checked_id(payload, 'department_id', MAX_DEPARTMENT_ID)
    return FocusEvent(
        customer_id, department_id, timestamp, event_time_s, record.position, read_at_s=time.time()
    )


class _ParseStoreEventsFn(beam.DoFn):
    """Parses each record by the event type its topic carries; a quarantined one is a
    ``poison_pill`` dead letter."""

    def __init__(self, expected_type_of_topic: dict[str, str], quarantined: dict[str, str]):
        self._expected_type_of_topic = expected_type_of_topic
        self._quarantined = quarantined

    def setup(self) -> None:
        self._read = {
            topic: Metrics.counter('events', f'read_{topic}')
            for topic in self._expected_type_of_topic
        }
        self._read_delay = LatencyHistogram('events', 'focus_read_delay_ms')

    def process(self, record: KafkaRecord) -> Iterator[Any]:
        self._read[record.topic].inc()
        failure = self._quarantined.get(record.position.event_id)
        if failure is not None:
            yield self._dead_letter(
                record, 'poison_pill', f'failed the job on consecutive starts: {failure}'
            )
            return
        try:
            event = parse_store_event(record, self._expected_type_of_topic[record.topic])
        except InvalidEvent as error:
            yield self._dead_letter(record, error.reason, str(error))
            return
        except Exception as error:  # a parser bug must not stall the partition
            yield self._dead_letter(record, 'parse_error', f'{type(error).__name__}: {error}')
            return
        if isinstance(event, FocusEvent):
            self._read_delay.update(max(0.0, event.read_at_s * 1000 - record.timestamp_ms))
        tag = 'entries' if isinstance(event, EntryEvent) else 'focuses'
        yield beam.pvalue.TaggedOutput(tag, beam.window.TimestampedValue(event, event.event_time_s))

    @staticmethod
    def _dead_letter(record: KafkaRecord, reason: str, detail: str) -> beam.pvalue.TaggedOutput:
        Metrics.counter('dead_letters', reason).inc()
        return beam.pvalue.TaggedOutput(
            'dead_letters', DeadLetter(reason, detail, record.position, record.value)
        )


class ParseStoreEvents(beam.PTransform):
    """Validates entry and focus records; the rest becomes dead letters, and so do the
    ``quarantined`` records (position -> the error they failed the job with)."""

    def __init__(
        self, entry_topic: str, focus_topic: str, quarantined: Optional[dict[str, str]] = None
    ):
        super().__init__()
        self._expected_type_of_topic = {
            entry_topic: ENTRY_EVENT_TYPE,
            focus_topic: FOCUS_EVENT_TYPE,
        }
        self._quarantined = quarantined or {}

    def expand(self, records: beam.PCollection[KafkaRecord]) -> beam.pvalue.DoOutputsTuple:
        return records | 'ParseAndValidate' >> beam.ParDo(
            _ParseStoreEventsFn(self._expected_type_of_topic, self._quarantined)
        ).with_outputs('entries', 'focuses', 'dead_letters')
