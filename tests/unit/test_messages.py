"""The JSON messages the service writes, checked against their Avro schemas."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from fastavro.validation import validate

import schema
from tests.unit.builders import ENTRY_TOPIC, FOCUS_TOPIC, entry, focus, ignoring_read_time, record
from transforms.domain import CouponPrediction, DeadLetter, SourcePosition
from transforms.events import ENTRY_EVENT_TYPE, FOCUS_EVENT_TYPE, parse_store_event
from transforms.messages import dead_letter_message, encode_event, prediction_result_message


def avro_field_names(name: str) -> list[str]:
    return [
        f['name'] for f in json.loads((schema.SCHEMA_DIR / f'{name}.avsc').read_text())['fields']
    ]


def assert_valid(message: dict, schema_name: str) -> None:
    assert validate(message, schema.avro_schema(schema_name), raise_errors=True)


# --- prediction result -------------------------------------------------------------------


def test_prediction_result_avsc_has_every_top_level_field_the_message_has():
    _, value = prediction_result_message(focus(42, 1000.0), CouponPrediction(7, 0.5))

    assert sorted(json.loads(value)) == sorted(avro_field_names('prediction_result'))


def test_prediction_result_is_keyed_by_customer_id():
    key, _ = prediction_result_message(focus(42, 1000.0), CouponPrediction(7, 0.5))

    assert key == b'42'


def test_prediction_result_value_validates_and_carries_the_focus():
    f = focus(42, 1000.0, offset=9, department_id=3)

    _, value = prediction_result_message(f, CouponPrediction(7, 0.625))
    message = json.loads(value)

    assert_valid(message, 'prediction_result')
    assert message == {
        'event_type': 'prediction result',
        'event_timestamp': f.event_timestamp,
        'focus_event_id': f'{FOCUS_TOPIC}/0/9',
        'payload': {'customer_id': 42, 'coupon_id': 7, 'prediction': 0.625},
    }


# --- dead letter -------------------------------------------------------------------------

ORIGINAL = b'\x00\xff{"not": "utf8 \xc3"}'


def test_dead_letter_validates_and_names_its_source():
    letter = DeadLetter('not_utf8', 'bad byte', SourcePosition(ENTRY_TOPIC, 2, 31), ORIGINAL)

    key, value = dead_letter_message(letter)
    message = json.loads(value)

    assert_valid(message, 'dead_letter')
    assert key == f'{ENTRY_TOPIC}/2/31'.encode()
    assert (message['reason'], message['detail']) == ('not_utf8', 'bad byte')
    assert (message['source_topic'], message['source_partition'], message['source_offset']) == (
        ENTRY_TOPIC,
        2,
        31,
    )


def test_dead_letter_original_round_trips_through_base64():
    letter = DeadLetter('not_utf8', 'bad byte', SourcePosition(ENTRY_TOPIC, 0, 1), ORIGINAL)

    _, value = dead_letter_message(letter)

    assert base64.b64decode(json.loads(value)['original_base64']) == ORIGINAL


def test_dead_letter_without_source_or_original_gives_nulls():
    letter = DeadLetter('scoring_failed', 'no scorer', None, None)

    key, value = dead_letter_message(letter)
    message = json.loads(value)

    assert_valid(message, 'dead_letter')
    assert key is None
    assert [
        message[name]
        for name in (
            'source_topic',
            'source_partition',
            'source_offset',
            'original_base64',
            'original_size',
            'original_sha256',
        )
    ] == [None] * 6
    assert message['truncated'] is False


@pytest.mark.parametrize('size', [0, 10, 64 * 1024, 64 * 1024 + 1, 900_000, 1_048_576])
def test_dead_letter_is_bounded_whatever_the_original_size(size):
    original = bytes(range(256)) * (size // 256) + b'x' * (size % 256)
    letter = DeadLetter('too_large', 'd' * size, SourcePosition(FOCUS_TOPIC, 0, 9), original)

    _, value = dead_letter_message(letter, max_original_bytes=64 * 1024)
    message = json.loads(value)

    assert_valid(message, 'dead_letter')
    assert len(value) < 64 * 1024 * 4 / 3 + 64 * 1024 + 1024  # base64 prefix + detail + fields
    assert base64.b64decode(message['original_base64']) == original[: 64 * 1024]
    assert message['original_size'] == size
    assert message['original_sha256'] == hashlib.sha256(original).hexdigest()
    assert message['truncated'] is (size > 64 * 1024)


# --- encode_event ------------------------------------------------------------------------


@pytest.mark.parametrize(
    'event, topic, expected_type',
    [
        (entry(5, 1_600_000_000.25, offset=3), ENTRY_TOPIC, ENTRY_EVENT_TYPE),
        (focus(5, 1_600_000_000.25, offset=4, department_id=2), FOCUS_TOPIC, FOCUS_EVENT_TYPE),
    ],
    ids=['entry', 'focus'],
)
def test_encode_event_round_trips_through_parse_store_event(event, topic, expected_type):
    rec = record(encode_event(event), topic=topic, offset=event.source.offset)

    parsed = parse_store_event(rec, expected_type)

    assert ignoring_read_time(parsed) == event
