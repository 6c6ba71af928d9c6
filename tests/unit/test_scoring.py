"""Scorer rows, the split of predictions by focus, and one request to a real HTTP server."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import requests

from tests.unit.builders import context, coupon, enriched, focus, predictions
from tests.unit.stub_http import StubHttpServer
from transforms.domain import PROFILE_FIELDS, ScoredFocus
from transforms.scoring import (
    CouponScorerHandler,
    ScorerConfig,
    ScorerError,
    _rows,
    _split_by_focus,
)


def two_focus_batch():
    """Customer 1 focusing with coupons 11 and 12, then customer 2 with coupon 21."""
    return [
        enriched(
            focus(1, 100.0, offset=1, department_id=3),
            context(1, age_range='26-35', income_bracket=4),
            coupon(11, 3, discount=0.1, price=10.0),
            coupon(12, 3, discount=0.2, price=20.0),
        ),
        enriched(
            focus(2, 101.0, offset=2, department_id=5),
            context(2, gender='F'),
            coupon(21, 5, discount=0.3, price=30.0),
        ),
    ]


# --- _rows and _split_by_focus -----------------------------------------------------------


def test_rows_are_in_focus_then_coupon_order():
    rows = _rows(two_focus_batch())

    assert [(r['customer_id'], r['coupon_id']) for r in rows] == [(1, 11), (1, 12), (2, 21)]


def test_row_has_exactly_the_instance_fields():
    first = two_focus_batch()[0]

    row = _rows([first])[1]

    assert row == {
        'customer_id': 1,
        'coupon_id': 12,
        'department_id': 3,
        **first.context.as_dict(),
        'coupon_mean_discount': 0.2,
        'coupon_mean_item_price': 20.0,
    }
    assert set(PROFILE_FIELDS) <= set(row)
    assert (row['age_range'], row['income_bracket']) == ('26-35', 4)


def test_focus_without_coupons_gives_no_rows():
    assert _rows([enriched(focus(1, 100.0), context(1))]) == []


def test_split_gives_each_focus_its_own_predictions_in_order():
    batch = two_focus_batch()

    scored = _split_by_focus(batch, [0.1, 0.2, 0.3])

    assert scored == [
        ScoredFocus(batch[0].focus, predictions((11, 0.1), (12, 0.2))),
        ScoredFocus(batch[1].focus, predictions((21, 0.3))),
    ]


# --- CouponScorerHandler.request against a local HTTP server -----------------------------

PREDICT_PATH = '/v1/models/coupon:predict'


class StubScorer(StubHttpServer):
    """A scorer that answers every request with the status and body it was last given."""

    def __init__(self):
        super().__init__(lambda method, path, body: (self.status, self.body))
        self.status, self.body = 200, {}
        self.url = self.base_url + PREDICT_PATH

    def answer_with(self, status: int, body: Any) -> None:
        self.status, self.body = status, body


@pytest.fixture
def scorer() -> Iterator[StubScorer]:
    with StubScorer() as stub:
        yield stub


def request(scorer: StubScorer, batch) -> list[ScoredFocus]:
    handler = CouponScorerHandler(ScorerConfig(scorer.url, timeout_s=5.0, retry_s=0))
    with handler.create_client() as session:  # the client RunInference uses
        return list(handler.request(batch, session))


def scorer_error(scorer: StubScorer, batch) -> ScorerError:
    with pytest.raises(ScorerError) as raised:
        request(scorer, batch)
    return raised.value


def test_200_with_predictions_gives_scored_focuses(scorer):
    batch = two_focus_batch()
    scorer.answer_with(200, {'predictions': [0.9, 0.4, 0.7]})

    scored = request(scorer, batch)

    assert scored == [
        ScoredFocus(batch[0].focus, predictions((11, 0.9), (12, 0.4))),
        ScoredFocus(batch[1].focus, predictions((21, 0.7))),
    ]
    assert scorer.requests == [('POST', PREDICT_PATH, {'instances': _rows(batch)})]


def test_400_is_a_scorer_error_not_retryable(scorer):
    scorer.answer_with(400, {'error': 'malformed'})

    error = scorer_error(scorer, two_focus_batch())

    assert not error.retryable
    assert '400' in str(error)


@pytest.mark.parametrize('status', [503, 429])
def test_overload_or_server_error_is_retryable(scorer, status):
    scorer.answer_with(status, {'error': 'busy'})

    assert scorer_error(scorer, two_focus_batch()).retryable


@pytest.mark.parametrize(
    'answer', [[0.5, 0.5], [0.5, 0.5, 0.5, 0.5], None], ids=['too_few', 'too_many', 'missing']
)
def test_wrong_number_of_predictions_is_a_scorer_error(scorer, answer):
    scorer.answer_with(200, {'predictions': answer})

    assert not scorer_error(scorer, two_focus_batch()).retryable


def test_an_answer_that_is_not_json_is_a_retryable_scorer_error(scorer):
    scorer.answer_with(200, b'<html>proxy error</html>')

    error = scorer_error(scorer, two_focus_batch())

    assert error.retryable
    assert 'not JSON' in str(error)


def test_retryable_failures_are_retried_until_the_scorer_answers():
    answers = iter(
        [
            (503, {'error': 'down'}),
            (429, {'error': 'busy'}),
            (200, {'predictions': [0.9, 0.4, 0.7]}),
        ]
    )
    batch = two_focus_batch()
    with StubHttpServer(lambda method, path, body: next(answers)) as stub:
        handler = CouponScorerHandler(ScorerConfig(stub.base_url + PREDICT_PATH, retry_s=10))
        with requests.Session() as session:
            scored = list(handler.request(batch, session))

    assert len(stub.requests) == 3
    assert [s.focus for s in scored] == [b.focus for b in batch]


def test_a_retryable_failure_is_raised_once_the_retry_time_is_spent():
    with StubHttpServer(lambda method, path, body: (503, {'error': 'down'})) as stub:
        handler = CouponScorerHandler(ScorerConfig(stub.base_url + PREDICT_PATH, retry_s=1.0))
        started = time.monotonic()
        with requests.Session() as session, pytest.raises(ScorerError):
            handler.request(two_focus_batch(), session)

    assert time.monotonic() - started < 10  # 1 s of waits; generous for a loaded machine
    assert len(stub.requests) >= 3  # first waits: 0.1-0.2 s, 0.2-0.4 s, 0.4-0.8 s


class _AlwaysUnlucky:
    """A throttler's coin that throttles whenever the throttling probability is above 0."""

    def uniform(self, low: float, high: float) -> float:
        return low


def test_a_healthy_scorer_is_never_throttled(scorer, monkeypatch):
    # Each run_inference counts the batch in the base class's throttler, then the attempt in
    # its own: the attempt must not see the batch as an unanswered request (it did, and waited
    # 1 s with probability 1/2 at the start of every 1 s window).
    slept = []
    monkeypatch.setattr('apache_beam.io.components.adaptive_throttler.time.sleep', slept.append)
    scorer.answer_with(200, {'predictions': [0.9, 0.4, 0.7]})
    handler = CouponScorerHandler(ScorerConfig(scorer.url, retry_s=0))
    handler.throttler._random = handler._attempt_throttler._random = _AlwaysUnlucky()
    with requests.Session() as session:
        for _ in range(3):
            list(handler.run_inference(two_focus_batch(), session))

    assert slept == []
    assert len(scorer.requests) == 3


def test_a_failing_scorer_is_throttled_client_side(monkeypatch):
    slept = []
    monkeypatch.setattr('apache_beam.io.components.adaptive_throttler.time.sleep', slept.append)
    with StubHttpServer(lambda method, path, body: (503, {'error': 'down'})) as stub:
        handler = CouponScorerHandler(ScorerConfig(stub.base_url + PREDICT_PATH, retry_s=1.0))
        handler._attempt_throttler._random = _AlwaysUnlucky()
        with requests.Session() as session, pytest.raises(ScorerError):
            handler.request(two_focus_batch(), session)

    # time.sleep is the module's, so the backoff's waits are in ``slept`` too; the throttler's
    # are the 1 s ones
    assert 1 in slept
