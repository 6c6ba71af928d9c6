"""parse_store_event and ParseStoreEvents: valid events out, every fault a dead letter."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Optional

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.metrics import READ_DELAY, query
from tests.unit.builders import (
    ENTRY_TOPIC,
    FOCUS_TOPIC,
    SEED_TIMESTAMP,
    entry_message,
    entry_record,
    epoch_s,
    focus_message,
    focus_record,
    ignoring_read_time,
    record,
    to_bytes,
)
from transforms.domain import DeadLetter, EntryEvent, FocusEvent, KafkaRecord, SourcePosition
from transforms.events import (
    ENTRY_EVENT_TYPE,
    FOCUS_EVENT_TYPE,
    MAX_MESSAGE_BYTES,
    InvalidEvent,
    ParseStoreEvents,
    parse_store_event,
)

SEED_TIME_S = epoch_s(2001, 12, 17, 9, 30, 47)
EXPECTED_TYPE = {ENTRY_TOPIC: ENTRY_EVENT_TYPE, FOCUS_TOPIC: FOCUS_EVENT_TYPE}


def parse(rec: KafkaRecord):
    return parse_store_event(rec, EXPECTED_TYPE[rec.topic])


def without(message: dict[str, Any], *path: str) -> dict[str, Any]:
    """A deep copy of ``message`` without the field at ``path``."""
    copy = {k: (dict(v) if isinstance(v, dict) else v) for k, v in message.items()}
    *parents, last = path
    node = copy
    for name in parents:
        node = node[name]
    del node[last]
    return copy


def with_timestamp(text: str) -> KafkaRecord:
    return entry_record(entry_message(timestamp=text))


def _bad(name: str, offset: int, topic: str, value: Optional[bytes], reason: str) -> Any:
    """One bad input: a record (at a distinct offset) and the reason it must be refused."""
    return pytest.param(record(value, topic=topic, partition=3, offset=offset), reason, id=name)


BAD_INPUTS = [
    _bad('not_utf8', 100, ENTRY_TOPIC, b'{"event_type": "\xff\xfe"}', 'not_utf8'),
    _bad('not_json', 101, ENTRY_TOPIC, b'{"event_type": "customer entry",', 'not_json'),
    _bad('json_array', 102, ENTRY_TOPIC, to_bytes([entry_message()]), 'schema_mismatch'),
    _bad('json_string', 103, ENTRY_TOPIC, to_bytes('customer entry'), 'schema_mismatch'),
    _bad(
        'event_type_not_string',
        104,
        ENTRY_TOPIC,
        to_bytes(entry_message(event_type=1)),
        'schema_mismatch',
    ),
    _bad(
        'missing_payload',
        105,
        ENTRY_TOPIC,
        to_bytes(without(entry_message(), 'payload')),
        'schema_mismatch',
    ),
    _bad(
        'missing_customer_id',
        106,
        ENTRY_TOPIC,
        to_bytes(without(entry_message(), 'payload', 'customer_id')),
        'schema_mismatch',
    ),
    _bad('customer_id_string', 107, ENTRY_TOPIC, to_bytes(entry_message('1')), 'schema_mismatch'),
    _bad('customer_id_bool', 108, ENTRY_TOPIC, to_bytes(entry_message(True)), 'schema_mismatch'),
    _bad('customer_id_float', 109, ENTRY_TOPIC, to_bytes(entry_message(1.0)), 'schema_mismatch'),
    _bad(
        'missing_department_id',
        110,
        FOCUS_TOPIC,
        to_bytes(without(focus_message(), 'payload', 'department_id')),
        'schema_mismatch',
    ),
    _bad(
        'missing_event_timestamp',
        111,
        ENTRY_TOPIC,
        to_bytes(without(entry_message(), 'event_timestamp')),
        'schema_mismatch',
    ),
    _bad(
        'unknown_event_type',
        112,
        ENTRY_TOPIC,
        to_bytes(entry_message(event_type='customer exit')),
        'unknown_event_type',
    ),
    _bad('entry_on_focus_topic', 113, FOCUS_TOPIC, to_bytes(entry_message()), 'wrong_topic'),
    _bad('focus_on_entry_topic', 114, ENTRY_TOPIC, to_bytes(focus_message()), 'wrong_topic'),
    _bad(
        'too_large',
        115,
        ENTRY_TOPIC,
        to_bytes(entry_message()) + b' ' * MAX_MESSAGE_BYTES,
        'too_large',
    ),
    _bad('customer_id_zero', 116, ENTRY_TOPIC, to_bytes(entry_message(0)), 'id_out_of_range'),
    _bad('customer_id_negative', 117, ENTRY_TOPIC, to_bytes(entry_message(-5)), 'id_out_of_range'),
    _bad('customer_id_10e13', 118, ENTRY_TOPIC, to_bytes(entry_message(10**13)), 'id_out_of_range'),
    _bad(
        'department_id_10e7',
        119,
        FOCUS_TOPIC,
        to_bytes(focus_message(department_id=10**7)),
        'id_out_of_range',
    ),
    _bad(
        'timestamp_yesterday',
        120,
        ENTRY_TOPIC,
        to_bytes(entry_message(timestamp='yesterday')),
        'bad_timestamp',
    ),
    _bad(
        'timestamp_impossible_date',
        121,
        ENTRY_TOPIC,
        to_bytes(entry_message(timestamp='2021-13-45T99:00:00')),
        'bad_timestamp',
    ),
    _bad('value_none', 122, ENTRY_TOPIC, None, 'not_json'),
    _bad('value_empty', 123, FOCUS_TOPIC, b'', 'not_json'),
]


# --- parse_store_event -------------------------------------------------------------------


def test_seed_entry_example_is_parsed():
    rec = entry_record(
        {
            'event_type': 'customer entry',
            'event_timestamp': SEED_TIMESTAMP,
            'payload': {'customer_id': 1},
        },
        partition=2,
        offset=17,
    )

    assert parse(rec) == EntryEvent(
        customer_id=1,
        event_timestamp=SEED_TIMESTAMP,
        event_time_s=SEED_TIME_S,
        source=SourcePosition(ENTRY_TOPIC, 2, 17),
    )


def test_seed_focus_example_is_parsed():
    rec = focus_record(
        {
            'event_type': 'customer focus',
            'event_timestamp': SEED_TIMESTAMP,
            'payload': {'customer_id': 1, 'department_id': 4},
        },
        offset=5,
    )

    event = parse(rec)

    assert ignoring_read_time(event) == FocusEvent(
        customer_id=1,
        department_id=4,
        event_timestamp=SEED_TIMESTAMP,
        event_time_s=SEED_TIME_S,
        source=SourcePosition(FOCUS_TOPIC, 0, 5),
        read_at_s=0.0,
    )
    assert event.focus_id == f'{FOCUS_TOPIC}/0/5'


@pytest.mark.parametrize(
    'text, expected_s',
    [
        ('2001-12-17T09:30:47.0', epoch_s(2001, 12, 17, 9, 30, 47)),
        ('2021-03-18T08:29:02.160Z', epoch_s(2021, 3, 18, 8, 29, 2, 160_000)),
        ('2021-03-18T10:29:02.160+02:00', epoch_s(2021, 3, 18, 8, 29, 2, 160_000)),
        ('2021-03-18T08:29:02', epoch_s(2021, 3, 18, 8, 29, 2)),
        ('2021-03-18T08:29:02.123456789Z', epoch_s(2021, 3, 18, 8, 29, 2, 123_456)),
    ],
)
def test_timestamp_forms_give_epoch_seconds(text, expected_s):
    event = parse(with_timestamp(text))

    assert event.event_timestamp == text
    assert event.event_time_s == pytest.approx(expected_s, abs=1e-6)


@pytest.mark.parametrize('customer_id, department_id', [(1, 1), (10**12, 10**6)])
def test_ids_at_the_bounds_are_accepted(customer_id, department_id):
    event = parse(focus_record(focus_message(customer_id, department_id)))

    assert (event.customer_id, event.department_id) == (customer_id, department_id)


def test_message_of_exactly_the_size_limit_is_accepted():
    message = to_bytes(entry_message())
    padded = message + b' ' * (MAX_MESSAGE_BYTES - len(message))

    assert parse(record(padded, topic=ENTRY_TOPIC)).customer_id == 1


@pytest.mark.parametrize('text', ['0001-01-01T00:00:00+01:00', '9999-12-31T23:59:59-01:00'])
def test_timestamp_out_of_datetime_range_is_bad_timestamp(text):
    with pytest.raises(InvalidEvent) as raised:
        parse(with_timestamp(text))

    assert raised.value.reason == 'bad_timestamp'


def test_timestamp_with_trailing_newline_is_bad_timestamp():
    with pytest.raises(InvalidEvent) as raised:
        parse(with_timestamp(SEED_TIMESTAMP + '\n'))

    assert raised.value.reason == 'bad_timestamp'


# --- ParseStoreEvents in a pipeline ------------------------------------------------------


def parse_in_pipeline(p: beam.Pipeline, records: list[KafkaRecord]):
    return p | beam.Create(records, reshuffle=False) | ParseStoreEvents(ENTRY_TOPIC, FOCUS_TOPIC)


def dead_letter_identity(letter: DeadLetter):
    """What a dead letter must carry, leaving out its free-text detail."""
    return letter.reason, letter.source, letter.original


def test_pipeline_splits_entries_focuses_and_dead_letters():
    good_entry = entry_record(entry_message(11), offset=1)
    good_focus = focus_record(focus_message(11, 3), offset=2)
    bad = focus_record(focus_message(-1), offset=3)

    with test_pipeline.TestPipeline() as p:
        result = parse_in_pipeline(p, [good_entry, bad, good_focus])

        assert_that(result.entries, equal_to([parse(good_entry)]), label='entries')
        assert_that(
            result.focuses | beam.Map(ignoring_read_time),
            equal_to([ignoring_read_time(parse(good_focus))]),
            label='focuses',
        )
        assert_that(
            result.dead_letters | beam.Map(dead_letter_identity),
            equal_to([('id_out_of_range', bad.position, bad.value)]),
            label='dead_letters',
        )


@pytest.mark.parametrize('bad, reason', BAD_INPUTS)
def test_bad_input_becomes_dead_letter_with_reason_original_and_source(bad, reason):
    with test_pipeline.TestPipeline() as p:
        result = parse_in_pipeline(p, [bad])

        assert_that(
            result.dead_letters | beam.Map(dead_letter_identity),
            equal_to([(reason, bad.position, bad.value)]),
        )
        assert_that(
            (result.entries, result.focuses) | beam.Flatten(), equal_to([]), label='no_events'
        )


def test_pipeline_dead_letter_names_source_topic_partition_offset():
    bad = record(b'\x80', topic=FOCUS_TOPIC, partition=7, offset=123456)

    with test_pipeline.TestPipeline() as p:
        result = parse_in_pipeline(p, [bad])

        assert_that(
            result.dead_letters
            | beam.Map(lambda d: (d.source.topic, d.source.partition, d.source.offset, d.original)),
            equal_to([(FOCUS_TOPIC, 7, 123456, b'\x80')]),
        )


def test_one_bad_record_does_not_affect_the_good_ones():
    good = [entry_record(entry_message(c), offset=c) for c in range(1, 6)]
    bad = record(b'{"event_type"', topic=ENTRY_TOPIC, offset=99)

    with test_pipeline.TestPipeline() as p:
        result = parse_in_pipeline(p, good[:2] + [bad] + good[2:])

        assert_that(
            result.entries | beam.Map(lambda e: e.customer_id),
            equal_to([1, 2, 3, 4, 5]),
            label='entries',
        )
        assert_that(
            result.dead_letters | beam.Map(lambda d: (d.reason, d.source.offset)),
            equal_to([('not_json', 99)]),
            label='dead_letters',
        )


def test_output_element_timestamp_is_the_event_time():
    records = [
        entry_record(entry_message(1, '2001-12-17T09:30:47.0'), offset=1),
        focus_record(focus_message(1, 2, '2021-03-18T08:29:02.160Z'), offset=2),
    ]
    expected = {1: epoch_s(2001, 12, 17, 9, 30, 47), 2: epoch_s(2021, 3, 18, 8, 29, 2, 160_000)}

    def timestamps_match(actual):
        assert len(actual) == len(expected)
        for offset, timestamp_s in actual:
            assert timestamp_s == pytest.approx(expected[offset], abs=1e-6)

    class WithTimestamp(beam.DoFn):
        def process(self, event, timestamp=beam.DoFn.TimestampParam):
            yield event.source.offset, float(timestamp)

    with test_pipeline.TestPipeline() as p:
        result = parse_in_pipeline(p, records)
        events = (result.entries, result.focuses) | beam.Flatten()

        assert_that(events | beam.ParDo(WithTimestamp()), timestamps_match)


def test_pipeline_turns_out_of_range_timestamp_into_dead_letter():
    bad = with_timestamp('0001-01-01T00:00:00+01:00')

    with test_pipeline.TestPipeline() as p:
        result = parse_in_pipeline(p, [bad])

        assert_that(result.dead_letters | beam.Map(lambda d: d.reason), equal_to(['bad_timestamp']))


def test_the_read_delay_of_focus_events_counts_from_their_kafka_timestamp():
    produced_ms = int(time.time() * 1000) - 12_000  # 12 s before: the 20 s bucket
    at = functools.partial(dataclasses.replace, timestamp_ms=produced_ms)
    records = [
        at(focus_record(focus_message(11, 3), offset=1)),
        at(focus_record(focus_message(12, 3), offset=2)),
        at(entry_record(entry_message(11), offset=3)),  # not a focus event: not counted
    ]
    p = test_pipeline.TestPipeline()
    parse_in_pipeline(p, records)
    result = p.run()
    result.wait_until_finish()

    assert query(result).latency_buckets(READ_DELAY) == {'20000': 2}
