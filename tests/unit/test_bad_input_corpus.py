"""The malformed-message corpus (tests/corpus.py): each one a dead letter with its reason."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.corpus import CORPUS, ENTRY, FOCUS, BadInput
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
from transforms.domain import EntryEvent, FocusEvent, KafkaRecord
from transforms.events import (
    ENTRY_EVENT_TYPE,
    FOCUS_EVENT_TYPE,
    InvalidEvent,
    ParseStoreEvents,
    parse_store_event,
)

TOPIC_OF_KIND = {ENTRY: ENTRY_TOPIC, FOCUS: FOCUS_TOPIC}
EXPECTED_TYPE = {ENTRY_TOPIC: ENTRY_EVENT_TYPE, FOCUS_TOPIC: FOCUS_EVENT_TYPE}
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
SEED_TIME_S = epoch_s(2001, 12, 17, 9, 30, 47)


def bad_record(bad: BadInput, offset: int = 0) -> KafkaRecord:
    return record(bad.value, topic=TOPIC_OF_KIND[bad.topic_kind], offset=offset)


def parse(rec: KafkaRecord):
    return parse_store_event(rec, EXPECTED_TYPE[rec.topic])


def test_corpus_has_30_distinct_entries_covering_every_input_reason():
    assert len(CORPUS) >= 30
    assert len({bad.name for bad in CORPUS}) == len(CORPUS)
    assert {bad.reason for bad in CORPUS} == INPUT_REASONS


@pytest.mark.parametrize('bad', CORPUS, ids=lambda bad: bad.name)
def test_corpus_entry_is_refused_with_its_reason(bad: BadInput):
    with pytest.raises(InvalidEvent) as raised:
        parse(bad_record(bad))

    assert raised.value.reason == bad.reason


def test_unknown_fields_are_ignored():
    message = entry_message(7, store='Zürich', payload={'customer_id': 7, 'loyalty': [1, 2]})

    assert parse(entry_record(message)).customer_id == 7


def test_nesting_of_64_levels_is_accepted():
    message = to_bytes(focus_message())[:-1] + b', "x": ' + b'[' * 63 + b']' * 63 + b'}'

    assert parse(record(message, topic=FOCUS_TOPIC)).department_id == 2


def test_brackets_inside_strings_do_not_count_as_nesting():
    message = entry_message(note='[{' * 1000 + '\\"[')

    assert parse(entry_record(message)).customer_id == 1


def test_pipeline_dead_letters_every_corpus_entry_and_passes_the_valid_events_around_them():
    valid_entries, valid_focuses, bad = [], [], []
    for index, bad_input in enumerate(CORPUS):
        customer_id, offset = index + 1, 3 * index
        valid_entries.append(entry_record(entry_message(customer_id), offset=offset))
        bad.append(bad_record(bad_input, offset=offset + 1))
        valid_focuses.append(focus_record(focus_message(customer_id, 5), offset=offset + 2))
    interleaved = [rec for triple in zip(valid_entries, bad, valid_focuses) for rec in triple]

    expected_entries = [
        EntryEvent(customer_id, SEED_TIMESTAMP, SEED_TIME_S, rec.position)
        for customer_id, rec in enumerate(valid_entries, start=1)
    ]
    expected_focuses = [
        FocusEvent(customer_id, 5, SEED_TIMESTAMP, SEED_TIME_S, rec.position, read_at_s=0.0)
        for customer_id, rec in enumerate(valid_focuses, start=1)
    ]
    expected_letters = [
        (bad_input.reason, rec.position, bad_input.value) for bad_input, rec in zip(CORPUS, bad)
    ]

    with test_pipeline.TestPipeline() as p:
        result = (
            p
            | beam.Create(interleaved, reshuffle=False)
            | ParseStoreEvents(ENTRY_TOPIC, FOCUS_TOPIC)
        )

        assert_that(result.entries, equal_to(expected_entries), label='entries')
        assert_that(
            result.focuses | beam.Map(ignoring_read_time),
            equal_to(expected_focuses),
            label='focuses',
        )
        assert_that(
            result.dead_letters | beam.Map(lambda d: (d.reason, d.source, d.original)),
            equal_to(expected_letters),
            label='dead_letters',
        )
