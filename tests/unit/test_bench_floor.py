"""The floor job's pure parts (bench.floor): the customer id, the scorer row, the output message,
and its DoFns called directly (fake state, a stub scorer), without a runner or a broker."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp

from bench.floor import (
    _CustomerMarkerFn,
    _KeyByCustomerFn,
    _ScorePerBundleFn,
    customer_id_of,
    floor_message,
    scorer_row,
)
from bench.probe import Observations
from standins.scorer.model import predict
from standins.scorer.server import PREDICT_PATH
from tests.unit.builders import ENTRY_TOPIC, FOCUS_TOPIC
from tests.unit.stub_http import StubHttpServer
from transforms.domain import EndedOffsets, KafkaRecord, Outgoing, SourcePosition
from transforms.messages import PREDICTION_EVENT_TYPE
from transforms.scoring import ScorerConfig


def store_record(topic: str, offset: int, value: bytes | None) -> KafkaRecord:
    return KafkaRecord(topic, 1, offset, b'key', value, 1_000)


def focus_value(customer_id: object) -> bytes:
    return json.dumps(
        {
            'event_type': 'customer focus',
            'event_timestamp': '2021-03-18T08:29:02.160Z',
            'payload': {'customer_id': customer_id, 'department_id': 3},
        }
    ).encode()


class FakeState:
    """A ReadModifyWriteState cell: what the runner hands a stateful DoFn."""

    def __init__(self, value: object = None):
        self.value = value
        self.reads = 0
        self.writes = 0

    def read(self) -> object:
        self.reads += 1
        return self.value

    def write(self, value: object) -> None:
        self.writes += 1
        self.value = value


# --- customer id -------------------------------------------------------------------------


def test_customer_id_is_read_from_the_payload():
    assert customer_id_of(focus_value(42)) == 42


@pytest.mark.parametrize(
    'value',
    [
        None,  # a tombstone
        b'{"payload": {"customer_id": 42}',  # cut short
        focus_value(42).replace(b'"payload"', b'"pay\x80load"'),  # not UTF-8
        b'{"event_type": "customer focus"}',  # no payload
        b'[1, 2]',
        focus_value('42'),
        focus_value(True),
        focus_value(4.2),
        focus_value(2**63),  # beyond the state's key coder
    ],
)
def test_a_value_without_an_integer_customer_id_has_none(value):
    assert customer_id_of(value) is None


# --- output message ----------------------------------------------------------------------


def test_the_message_names_its_focus_event_and_is_keyed_by_customer():
    record = store_record(FOCUS_TOPIC, 17, focus_value(42))

    key, value = floor_message(record, 42, 0.25)

    assert key == b'42'
    assert json.loads(value) == {
        'event_type': PREDICTION_EVENT_TYPE,
        'focus_event_id': f'{FOCUS_TOPIC}/1/17',
        'payload': {'customer_id': 42, 'prediction': 0.25},
    }


def test_the_bench_probe_counts_the_message_as_its_focus_events_output():
    record = store_record(FOCUS_TOPIC, 17, focus_value(42))
    _, value = floor_message(record, 42, 0.25)
    seen = Observations()

    seen.add_output(SimpleNamespace(headers=[], value=value), arrived_s=5.0)

    assert seen.first_arrival_s == {f'{FOCUS_TOPIC}/1/17': 5.0}


def test_the_scorer_stand_ins_model_scores_the_row():
    assert 0.0 < predict(scorer_row(42)) < 1.0


# --- DoFns -------------------------------------------------------------------------------


def test_keying_passes_records_with_a_customer_and_ends_the_others():
    good = store_record(ENTRY_TOPIC, 3, focus_value(42))
    bad = store_record(ENTRY_TOPIC, 4, b'not json')

    (keyed,) = _KeyByCustomerFn().process(good)
    (ended,) = _KeyByCustomerFn().process(bad)

    assert keyed == (42, good)
    assert ended.tag == 'ended' and ended.value == EndedOffsets(ENTRY_TOPIC, 1, 4, 5)


def test_an_entry_stores_the_marker_and_ends_there():
    entry = store_record(ENTRY_TOPIC, 3, focus_value(42))
    state = FakeState()

    (ended,) = _CustomerMarkerFn(FOCUS_TOPIC).process((42, entry), state)

    assert ended.tag == 'ended' and ended.value == EndedOffsets(ENTRY_TOPIC, 1, 3, 4)
    assert state.value is True and (state.reads, state.writes) == (1, 1)


@pytest.mark.parametrize('entered', [True, None])
def test_a_focus_event_reads_the_marker_and_passes_on_whether_or_not_its_entry_came(entered):
    focus = store_record(FOCUS_TOPIC, 5, focus_value(42))
    state = FakeState(entered)

    passed = list(_CustomerMarkerFn(FOCUS_TOPIC).process((42, focus), state))

    assert passed == [(42, focus)]
    assert (state.reads, state.writes) == (1, 1)


def test_a_bundle_is_scored_in_one_request_and_every_focus_event_gets_one_message():
    focuses = [(41, store_record(FOCUS_TOPIC, 1, b'')), (42, store_record(FOCUS_TOPIC, 2, b''))]

    def answer(_method, _path, body):
        return 200, {'predictions': [0.5] * len(body['instances'])}

    with StubHttpServer(answer) as scorer:
        fn = _ScorePerBundleFn(ScorerConfig(scorer.base_url + PREDICT_PATH))
        fn.setup()
        fn.start_bundle()
        for focus in focuses:
            fn.process(focus, Timestamp.of(1), GlobalWindow())
        outputs = list(fn.finish_bundle())
        fn.teardown()

    assert scorer.requests == [
        ('POST', PREDICT_PATH, {'instances': [scorer_row(41), scorer_row(42)]})
    ]
    assert [o.value for o in outputs] == [
        Outgoing(SourcePosition(FOCUS_TOPIC, 1, offset), (floor_message(record, customer, 0.5),))
        for (customer, record), offset in zip(focuses, (1, 2))
    ]
    assert all(o.timestamp == Timestamp.of(1) for o in outputs)


def test_an_empty_bundle_asks_the_scorer_nothing():
    with StubHttpServer(lambda *_: (500, {})) as scorer:
        fn = _ScorePerBundleFn(ScorerConfig(scorer.base_url + PREDICT_PATH))
        fn.setup()
        fn.start_bundle()
        assert list(fn.finish_bundle()) == []
        fn.teardown()

    assert scorer.requests == []
