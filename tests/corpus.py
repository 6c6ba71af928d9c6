"""A corpus of malformed store messages, each with the dead-letter reason it must get.

Data for the unit tests (``parse_store_event`` and ``ParseStoreEvents``) and for
fault tests that produce it to a real broker. ``topic_kind`` is the topic the
value is sent to: 'entry' or 'focus'. ``value`` None is a Kafka tombstone.
The rules behind the less obvious reasons are in ``transforms/events.py``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

from tests.unit.builders import entry_message, focus_message, to_bytes

ENTRY = 'entry'
FOCUS = 'focus'
SIZE_LIMIT = 16 * 1024  # docs/messages.md: too_large is > 16 KiB
ENTRY_BYTES = to_bytes(entry_message())
FOCUS_BYTES = to_bytes(focus_message())


@dataclasses.dataclass(frozen=True)
class BadInput:
    """One malformed message and the reason its dead letter must carry."""

    name: str
    topic_kind: str
    value: Optional[bytes]
    reason: str


def _nested(depth: int, inner: str = '1') -> str:
    return '[' * depth + inner + ']' * depth


def _with_id(kind: str, field: str, literal: str) -> bytes:
    """A valid message of ``kind`` but for its payload ``field``: the JSON ``literal``."""
    placeholder = '<id>'
    message = entry_message(placeholder) if kind == ENTRY else focus_message(**{field: placeholder})
    return to_bytes(message).replace(b'"<id>"', literal.encode('ascii'))


def _entry_at(timestamp: str) -> bytes:
    return to_bytes(entry_message(timestamp=timestamp))


def _focus_at(timestamp: str) -> bytes:
    return to_bytes(focus_message(timestamp=timestamp))


def _padded(message: bytes, size: int) -> bytes:
    return message + b' ' * (size - len(message))


def _json(value: Any) -> bytes:
    return json.dumps(value).encode('utf-8')


_DUPLICATE_CUSTOMER_ID = ENTRY_BYTES.replace(
    b'"customer_id": 1', b'"customer_id": 1, "customer_id": 2'
)
_DUPLICATE_EVENT_TYPE = FOCUS_BYTES.replace(
    b'{"event_type": "customer focus"',
    b'{"event_type": "customer entry", "event_type": "customer focus"',
)
_ENTRY_IN_ZURICH = json.dumps(entry_message(store='Zürich'), ensure_ascii=False)

CORPUS: tuple[BadInput, ...] = (
    # not_utf8: bytes that are no UTF-8, and JSON in other encodings.
    BadInput(
        'lone_continuation_byte',
        FOCUS,
        FOCUS_BYTES.replace(b'"payload"', b'"pay\x80load"'),
        'not_utf8',
    ),
    BadInput(
        'encoded_surrogate',
        ENTRY,
        ENTRY_BYTES.replace(b'entry"', b'entry\xed\xa0\x80"'),
        'not_utf8',
    ),
    BadInput('cut_multibyte_character', ENTRY, b'{"store": "Z\xc3', 'not_utf8'),
    BadInput('latin1', ENTRY, _ENTRY_IN_ZURICH.encode('latin-1'), 'not_utf8'),
    BadInput('utf16_with_bom', FOCUS, json.dumps(focus_message()).encode('utf-16'), 'not_utf8'),
    BadInput('utf16_le_no_bom', ENTRY, json.dumps(entry_message()).encode('utf-16-le'), 'not_utf8'),
    BadInput('utf16_be_no_bom', FOCUS, json.dumps(focus_message()).encode('utf-16-be'), 'not_utf8'),
    BadInput('utf32', ENTRY, json.dumps(entry_message()).encode('utf-32'), 'not_utf8'),
    BadInput(
        'nul_byte_in_string', FOCUS, FOCUS_BYTES.replace(b'focus"', b'focus\x00"'), 'not_utf8'
    ),
    # not_json: no value, broken syntax, and what RFC 8259 or this parser does not accept.
    BadInput('tombstone', ENTRY, None, 'not_json'),
    BadInput('empty', FOCUS, b'', 'not_json'),
    BadInput('whitespace_only', ENTRY, b' \t\r\n ', 'not_json'),
    BadInput('cut_short', FOCUS, FOCUS_BYTES[:-7], 'not_json'),
    BadInput('plain_text', ENTRY, b'hello', 'not_json'),
    BadInput('single_quotes', ENTRY, ENTRY_BYTES.replace(b'"', b"'"), 'not_json'),
    BadInput('trailing_comma', FOCUS, FOCUS_BYTES[:-1] + b',}', 'not_json'),
    BadInput('two_documents', ENTRY, ENTRY_BYTES + ENTRY_BYTES, 'not_json'),
    BadInput('utf8_bom', ENTRY, b'\xef\xbb\xbf' + ENTRY_BYTES, 'not_json'),
    BadInput('nan_top_level', FOCUS, b'NaN', 'not_json'),
    BadInput('nan_customer_id', ENTRY, _with_id(ENTRY, 'customer_id', 'NaN'), 'not_json'),
    BadInput(
        'infinity_department_id', FOCUS, _with_id(FOCUS, 'department_id', 'Infinity'), 'not_json'
    ),
    BadInput(
        'minus_infinity_customer_id', FOCUS, _with_id(FOCUS, 'customer_id', '-Infinity'), 'not_json'
    ),
    BadInput(
        'nan_timestamp', ENTRY, ENTRY_BYTES.replace(b'"2001-12-17T09:30:47.0"', b'NaN'), 'not_json'
    ),
    BadInput(
        'infinity_in_unknown_field', ENTRY, ENTRY_BYTES[:-1] + b', "score": Infinity}', 'not_json'
    ),
    BadInput('duplicate_customer_id', ENTRY, _DUPLICATE_CUSTOMER_ID, 'not_json'),
    BadInput('duplicate_event_type', FOCUS, _DUPLICATE_EVENT_TYPE, 'not_json'),
    BadInput('nested_8000_arrays', FOCUS, _nested(8000).encode('ascii'), 'not_json'),
    BadInput(
        'nested_2500_objects',
        ENTRY,
        ('{"a":' * 2500 + '1' + '}' * 2500).encode('ascii'),
        'not_json',
    ),
    BadInput(
        'nested_5000_arrays_as_customer_id',
        ENTRY,
        _with_id(ENTRY, 'customer_id', _nested(5000)),
        'not_json',
    ),
    BadInput(
        'nested_65_arrays_in_unknown_field',
        FOCUS,
        FOCUS_BYTES[:-1] + b', "x": ' + _nested(65).encode('ascii') + b'}',
        'not_json',
    ),
    # too_large: more than 16 KiB, whatever the content.
    BadInput('just_over_16_kib', FOCUS, _padded(FOCUS_BYTES, SIZE_LIMIT + 1), 'too_large'),
    BadInput('one_mib', ENTRY, _padded(ENTRY_BYTES, 1024 * 1024), 'too_large'),
    BadInput('nested_100k_arrays', FOCUS, _nested(100_000).encode('ascii'), 'too_large'),
    BadInput('huge_unknown_field', ENTRY, _json(entry_message(pad='x' * SIZE_LIMIT)), 'too_large'),
    # schema_mismatch: JSON, but not the shape of the schema.
    BadInput('top_level_array', ENTRY, _json([entry_message()]), 'schema_mismatch'),
    BadInput('top_level_string', FOCUS, _json('customer focus'), 'schema_mismatch'),
    BadInput('top_level_number', ENTRY, b'1', 'schema_mismatch'),
    BadInput('top_level_null', FOCUS, b'null', 'schema_mismatch'),
    BadInput('top_level_true', ENTRY, b'true', 'schema_mismatch'),
    BadInput('empty_object', FOCUS, b'{}', 'schema_mismatch'),
    BadInput('event_type_null', ENTRY, _json(entry_message(event_type=None)), 'schema_mismatch'),
    BadInput(
        'missing_payload',
        FOCUS,
        _json({'event_type': 'customer focus', 'event_timestamp': '2021-03-18T08:29:02.160Z'}),
        'schema_mismatch',
    ),
    BadInput('payload_array', ENTRY, _json(entry_message(payload=[1])), 'schema_mismatch'),
    BadInput(
        'missing_department_id',
        FOCUS,
        _json(focus_message(payload={'customer_id': 1})),
        'schema_mismatch',
    ),
    BadInput(
        'timestamp_number', ENTRY, _json(entry_message(timestamp=1008581447)), 'schema_mismatch'
    ),
    BadInput('customer_id_string', FOCUS, _json(focus_message('7')), 'schema_mismatch'),
    BadInput('customer_id_null', ENTRY, _json(entry_message(None)), 'schema_mismatch'),
    BadInput('customer_id_1_5', ENTRY, _with_id(ENTRY, 'customer_id', '1.5'), 'schema_mismatch'),
    BadInput('customer_id_1_0', FOCUS, _with_id(FOCUS, 'customer_id', '1.0'), 'schema_mismatch'),
    BadInput('customer_id_1e3', ENTRY, _with_id(ENTRY, 'customer_id', '1e3'), 'schema_mismatch'),
    BadInput(
        'customer_id_1e400', ENTRY, _with_id(ENTRY, 'customer_id', '1e400'), 'schema_mismatch'
    ),
    BadInput('customer_id_true', ENTRY, _with_id(ENTRY, 'customer_id', 'true'), 'schema_mismatch'),
    BadInput(
        'department_id_false', FOCUS, _with_id(FOCUS, 'department_id', 'false'), 'schema_mismatch'
    ),
    BadInput(
        'customer_id_2_pow_63', ENTRY, _with_id(ENTRY, 'customer_id', str(2**63)), 'schema_mismatch'
    ),
    BadInput(
        'customer_id_below_long',
        FOCUS,
        _with_id(FOCUS, 'customer_id', str(-(2**63) - 1)),
        'schema_mismatch',
    ),
    BadInput(
        'customer_id_10_pow_100',
        FOCUS,
        _with_id(FOCUS, 'customer_id', str(10**100)),
        'schema_mismatch',
    ),
    # unknown_event_type
    BadInput(
        'customer_exit',
        FOCUS,
        _json(focus_message(event_type='customer exit')),
        'unknown_event_type',
    ),
    BadInput(
        'event_type_capitalized',
        ENTRY,
        _json(entry_message(event_type='Customer Entry')),
        'unknown_event_type',
    ),
    BadInput(
        'event_type_trailing_space',
        ENTRY,
        _json(entry_message(event_type='customer entry ')),
        'unknown_event_type',
    ),
    BadInput('event_type_empty', FOCUS, _json(focus_message(event_type='')), 'unknown_event_type'),
    # wrong_topic
    BadInput('entry_on_focus_topic', FOCUS, ENTRY_BYTES, 'wrong_topic'),
    BadInput('focus_on_entry_topic', ENTRY, FOCUS_BYTES, 'wrong_topic'),
    # bad_timestamp: not the documented form, or a date that does not exist.
    BadInput('year_0000', ENTRY, _entry_at('0000-01-01T00:00:00'), 'bad_timestamp'),
    BadInput('month_99_day_99', FOCUS, _focus_at('9999-99-99T00:00:00'), 'bad_timestamp'),
    BadInput('year_10000', ENTRY, _entry_at('10000-01-01T00:00:00'), 'bad_timestamp'),
    BadInput(
        'fraction_of_10000_digits',
        FOCUS,
        _focus_at('2001-12-17T09:30:47.' + '1' * 10000),
        'bad_timestamp',
    ),
    BadInput(
        'fraction_of_10_digits', ENTRY, _entry_at('2001-12-17T09:30:47.0123456789'), 'bad_timestamp'
    ),
    BadInput('30_february_25_61', FOCUS, _focus_at('2021-02-30T25:61:00.000Z'), 'bad_timestamp'),
    BadInput('yesterday', ENTRY, _entry_at('yesterday'), 'bad_timestamp'),
    BadInput('empty_timestamp', FOCUS, _focus_at(''), 'bad_timestamp'),
    BadInput('date_only', ENTRY, _entry_at('2001-12-17'), 'bad_timestamp'),
    BadInput('space_separator', FOCUS, _focus_at('2001-12-17 09:30:47.0'), 'bad_timestamp'),
    BadInput('offset_24_hours', ENTRY, _entry_at('2001-12-17T09:30:47+24:00'), 'bad_timestamp'),
    BadInput(
        'arabic_indic_digits',
        ENTRY,
        _entry_at('\u0662\u0660\u0660\u0661-12-17T09:30:47.0'),
        'bad_timestamp',
    ),
    # id_out_of_range: a long, but outside customer_id 1..10^12 or department_id 1..10^6.
    BadInput('customer_id_0', ENTRY, _with_id(ENTRY, 'customer_id', '0'), 'id_out_of_range'),
    BadInput('customer_id_minus_1', FOCUS, _with_id(FOCUS, 'customer_id', '-1'), 'id_out_of_range'),
    BadInput(
        'customer_id_10_pow_12_plus_1',
        ENTRY,
        _with_id(ENTRY, 'customer_id', str(10**12 + 1)),
        'id_out_of_range',
    ),
    BadInput(
        'customer_id_10_pow_15',
        FOCUS,
        _with_id(FOCUS, 'customer_id', str(10**15)),
        'id_out_of_range',
    ),
    BadInput(
        'customer_id_long_max',
        FOCUS,
        _with_id(FOCUS, 'customer_id', str(2**63 - 1)),
        'id_out_of_range',
    ),
    BadInput(
        'customer_id_long_min',
        ENTRY,
        _with_id(ENTRY, 'customer_id', str(-(2**63))),
        'id_out_of_range',
    ),
    BadInput('department_id_0', FOCUS, _with_id(FOCUS, 'department_id', '0'), 'id_out_of_range'),
    BadInput(
        'department_id_minus_1', FOCUS, _with_id(FOCUS, 'department_id', '-1'), 'id_out_of_range'
    ),
    BadInput(
        'department_id_10_pow_6_plus_1',
        FOCUS,
        _with_id(FOCUS, 'department_id', str(10**6 + 1)),
        'id_out_of_range',
    ),
)
