"""Property-based fuzz of parse_store_event: random input and mutated valid events.

Whatever the bytes, the parser returns a valid event or raises InvalidEvent with
a reason input can cause: never another exception, never ``parse_error`` (a
fault of the parser itself). Derandomized and without an example database, so
every run, on CI too, tries the same examples.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any, Union

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.builders import ENTRY_TOPIC, FOCUS_TOPIC, entry_message, focus_message, record
from transforms.domain import EntryEvent, FocusEvent, KafkaRecord
from transforms.events import ENTRY_EVENT_TYPE, FOCUS_EVENT_TYPE, InvalidEvent, parse_store_event

INPUT_REASONS = {
    'not_utf8',
    'not_json',
    'too_large',
    'schema_mismatch',
    'unknown_event_type',
    'wrong_topic',
    'bad_timestamp',
    'id_out_of_range',
}
EXPECTED_TYPE = {ENTRY_TOPIC: ENTRY_EVENT_TYPE, FOCUS_TOPIC: FOCUS_EVENT_TYPE}
EVENT_CLASS = {ENTRY_TOPIC: EntryEvent, FOCUS_TOPIC: FocusEvent}
# The documented limits (docs/messages.md).
CUSTOMER_IDS = range(1, 10**12 + 1)
DEPARTMENT_IDS = range(1, 10**6 + 1)
MAX_DEPTH = 64
TIMESTAMP_FORM = re.compile(
    r'[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}'
    r'(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?'
)
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None)

StoreEvent = Union[EntryEvent, FocusEvent]


class Pairs(list):
    """A JSON object as its (name, value) pairs, so a name can occur twice."""


class RawJson(str):
    """JSON text written as it is (nesting too deep for json.dumps to write)."""


# --- Strategies --------------------------------------------------------------------------

topics = st.sampled_from([ENTRY_TOPIC, FOCUS_TOPIC])
edge_ids = st.sampled_from(
    [
        0,
        1,
        -1,
        10**6,
        10**6 + 1,
        10**12,
        10**12 + 1,
        2**63 - 1,
        2**63,
        -(2**63),
        -(2**63) - 1,
        10**100,
    ]
)
timestamp_like = st.from_regex(
    r'\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,12})?(Z|[+-]\d{2}:\d{2})?', fullmatch=True
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | edge_ids
    | st.floats()
    | st.text()
    | timestamp_like
    | st.sampled_from([ENTRY_EVENT_TYPE, FOCUS_EVENT_TYPE])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ['event_type', 'event_timestamp', 'payload', 'customer_id', 'department_id']
) | st.text(max_size=12)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """A timestamp of the documented form, in years where no offset leaves datetime's range."""
    moment = draw(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)))
    fraction = draw(st.text('0123456789', min_size=1, max_size=9) | st.just(''))
    zone = draw(st.sampled_from(['', 'Z', '+00:00', '+02:00', '-05:30', '+23:59']))
    return moment.isoformat(timespec='seconds') + ('.' + fraction if fraction else '') + zone


@st.composite
def valid_messages(draw: st.DrawFn, topic: str) -> dict[str, Any]:
    customer_id = draw(st.integers(CUSTOMER_IDS.start, CUSTOMER_IDS.stop - 1))
    timestamp = draw(timestamps())
    if topic == ENTRY_TOPIC:
        return entry_message(customer_id, timestamp)
    department_id = draw(st.integers(DEPARTMENT_IDS.start, DEPARTMENT_IDS.stop - 1))
    return focus_message(customer_id, department_id, timestamp)


NEAR_VALUES = {
    'event_type': st.sampled_from([ENTRY_EVENT_TYPE, FOCUS_EVENT_TYPE]) | st.text(max_size=20),
    'event_timestamp': timestamps() | timestamp_like,
    'customer_id': edge_ids | st.integers(),
    'department_id': edge_ids | st.integers(),
}


# --- Mutations ---------------------------------------------------------------------------


def as_pairs(value: Any) -> Any:
    if isinstance(value, dict):
        return Pairs([name, as_pairs(item)] for name, item in value.items())
    return value


def dumps(value: Any) -> str:
    """JSON text of ``value``; NaN and Infinity as Python's json writes them."""
    if isinstance(value, RawJson):
        return value
    if isinstance(value, Pairs):
        fields = (f'{json.dumps(name, ensure_ascii=False)}: {dumps(item)}' for name, item in value)
        return '{' + ', '.join(fields) + '}'
    return json.dumps(value, ensure_ascii=False)


def objects_in(message: Pairs) -> list[Pairs]:
    """The message and, while it is still an object, its payload."""
    return [message] + [value for _, value in message if isinstance(value, Pairs)]


def nested(value: Any, depth: int, in_arrays: bool) -> RawJson:
    """``value`` inside ``depth`` arrays, or objects of one field."""
    opening, closing = ('[', ']') if in_arrays else ('{"x": ', '}')
    return RawJson(opening * depth + dumps(value) + closing * depth)


def replacement(draw: st.DrawFn, name: str) -> Any:
    """A new value for field ``name``: often one near its valid values, else any JSON."""
    return draw(NEAR_VALUES.get(name, json_values) | json_values)


def mutate_field(draw: st.DrawFn, message: Pairs, kind: str) -> None:
    obj = draw(st.sampled_from(objects_in(message)))
    if kind == 'add' or not obj:
        name = draw(field_names)
        obj.append([name, replacement(draw, name)])
        return
    index = draw(st.integers(0, len(obj) - 1))
    name, value = obj[index]
    if kind == 'drop':
        del obj[index]
    elif kind == 'duplicate':
        again = value if draw(st.booleans()) else replacement(draw, name)
        obj.insert(draw(st.integers(0, len(obj))), [name, again])
    elif kind == 'nest':
        depth = draw(st.integers(1, MAX_DEPTH + 2) | st.integers(1, 3000))
        obj[index][1] = nested(value, depth, in_arrays=draw(st.booleans()))
    else:
        obj[index][1] = replacement(draw, name)


def mutate_bytes(draw: st.DrawFn, value: bytes, kind: str) -> bytes:
    if not value:
        return draw(st.binary(max_size=8))
    index = draw(st.integers(0, len(value) - 1))
    if kind == 'flip':
        return (
            value[:index] + bytes([value[index] ^ draw(st.integers(1, 255))]) + value[index + 1 :]
        )
    if kind == 'truncate':
        return value[:index]
    return value[:index] + draw(st.binary(min_size=1, max_size=8)) + value[index:]


def encoded(message: Any) -> bytes:
    """UTF-8 of the JSON text; a lone surrogate in a string gives bytes that are no UTF-8."""
    return dumps(message).encode('utf-8', 'surrogatepass')


@st.composite
def records_with_changed_fields(draw: st.DrawFn) -> KafkaRecord:
    """A valid event with 1 to 3 fields dropped, repeated, replaced, added or nested."""
    topic = draw(topics)
    message = as_pairs(draw(valid_messages(topic)))
    for kind in draw(
        st.lists(
            st.sampled_from(['drop', 'duplicate', 'replace', 'add', 'nest']), min_size=1, max_size=3
        )
    ):
        mutate_field(draw, message, kind)
    return record(encoded(message), topic=topic)


@st.composite
def records_with_changed_bytes(draw: st.DrawFn) -> KafkaRecord:
    """A valid event with 1 to 3 bytes flipped, or cut short, or random bytes inserted."""
    topic = draw(topics)
    value = encoded(draw(valid_messages(topic)))
    for kind in draw(
        st.lists(st.sampled_from(['flip', 'truncate', 'insert']), min_size=1, max_size=3)
    ):
        value = mutate_bytes(draw, value, kind)
    return record(value, topic=topic)


# --- Properties --------------------------------------------------------------------------


def parse(rec: KafkaRecord) -> StoreEvent:
    return parse_store_event(rec, EXPECTED_TYPE[rec.topic])


def strict_json(value: bytes) -> Any:
    """``value`` as RFC 8259 JSON: no NaN or Infinity, no name twice in an object."""

    def refuse_constant(name: str) -> None:
        raise AssertionError(f'accepted {name}')

    def unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        assert len(set(names)) == len(names), f'accepted a name twice: {names}'
        return dict(pairs)

    return json.loads(
        value.decode('utf-8'), parse_constant=refuse_constant, object_pairs_hook=unique_names
    )


def assert_event_of_record(event: StoreEvent, rec: KafkaRecord) -> None:
    """``event`` is of the record's topic, in the documented ranges, with the record's fields."""
    message = strict_json(rec.value)
    payload = message['payload']
    assert type(event) is EVENT_CLASS[rec.topic]
    assert message['event_type'] == EXPECTED_TYPE[rec.topic]
    assert type(payload['customer_id']) is int
    assert event.customer_id == payload['customer_id'] and event.customer_id in CUSTOMER_IDS
    if isinstance(event, FocusEvent):
        assert type(payload['department_id']) is int
        assert event.department_id == payload['department_id']
        assert event.department_id in DEPARTMENT_IDS
    assert event.event_timestamp == message['event_timestamp']
    assert TIMESTAMP_FORM.fullmatch(event.event_timestamp)
    assert math.isfinite(event.event_time_s)


def assert_event_or_known_reason(rec: KafkaRecord) -> None:
    """The record parses to its valid event or is refused with a reason input can cause."""
    try:
        event = parse(rec)
    except InvalidEvent as error:
        assert error.reason in INPUT_REASONS, (error.reason, str(error))
        return
    assert_event_of_record(event, rec)


@settings(FUZZ, max_examples=1000)
@given(value=st.binary(max_size=256), topic=topics)
def test_random_bytes_are_refused_with_a_known_reason(value, topic):
    try:
        parse(record(value, topic=topic))
    except InvalidEvent as error:
        assert error.reason in INPUT_REASONS, (error.reason, str(error))
    else:
        raise AssertionError(f'random bytes {value!r} accepted')


@FUZZ
@given(value=json_values, topic=topics)
def test_random_json_is_an_event_or_refused_with_a_known_reason(value, topic):
    assert_event_or_known_reason(record(encoded(value), topic=topic))


@FUZZ
@given(topic=topics, data=st.data())
def test_valid_events_parse_to_their_fields(topic, data):
    rec = record(encoded(data.draw(valid_messages(topic))), topic=topic)

    assert_event_of_record(parse(rec), rec)


@settings(FUZZ, max_examples=1200)
@given(rec=records_with_changed_fields())
def test_events_with_changed_fields_are_events_or_refused_with_a_known_reason(rec):
    assert_event_or_known_reason(rec)


@settings(FUZZ, max_examples=600)
@given(rec=records_with_changed_bytes())
def test_events_with_changed_bytes_are_events_or_refused_with_a_known_reason(rec):
    assert_event_or_known_reason(rec)
