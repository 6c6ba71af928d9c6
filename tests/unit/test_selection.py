"""top_coupons and SelectTopCoupons: at most K coupons at or above the threshold."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.unit.builders import focus, predictions, scored
from transforms.domain import CouponPrediction, EndedOffsets
from transforms.selection import SelectTopCoupons, top_coupons


def ids(chosen: list[CouponPrediction]) -> list[int]:
    return [p.coupon_id for p in chosen]


def test_at_most_k_are_kept():
    candidates = predictions((1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6))

    assert ids(top_coupons(candidates, top_k=2, threshold=0.0)) == [1, 2]


def test_fewer_than_k_are_all_kept():
    candidates = predictions((1, 0.9), (2, 0.8))

    assert ids(top_coupons(candidates, top_k=5, threshold=0.0)) == [1, 2]


def test_prediction_equal_to_threshold_is_kept():
    candidates = predictions((1, 0.2), (2, 0.19999))

    assert top_coupons(candidates, top_k=5, threshold=0.2) == [CouponPrediction(1, 0.2)]


def test_predictions_below_threshold_are_dropped():
    candidates = predictions((1, 0.1), (2, 0.5), (3, 0.05))

    assert ids(top_coupons(candidates, top_k=5, threshold=0.2)) == [2]


def test_ties_are_broken_by_lower_coupon_id():
    candidates = predictions((30, 0.5), (10, 0.5), (20, 0.5))

    assert ids(top_coupons(candidates, top_k=2, threshold=0.0)) == [10, 20]


def test_best_prediction_comes_first():
    candidates = predictions((1, 0.3), (2, 0.9), (3, 0.6))

    assert ids(top_coupons(candidates, top_k=3, threshold=0.0)) == [2, 3, 1]


def test_nothing_above_threshold_gives_empty():
    candidates = predictions((1, 0.1), (2, 0.15))

    assert top_coupons(candidates, top_k=5, threshold=0.2) == []


def test_no_predictions_gives_empty():
    assert top_coupons((), top_k=5, threshold=0.2) == []


def test_select_top_coupons_chooses_per_focus_and_ends_the_focus_with_none():
    first = focus(1, 100.0, offset=1)
    second = focus(2, 100.0, offset=2)
    none_above = focus(3, 100.0, offset=3)
    scored_focuses = [
        scored(first, (11, 0.9), (12, 0.1), (13, 0.5), (14, 0.7)),
        scored(second, (21, 0.3)),
        scored(none_above, (31, 0.05)),
    ]

    with test_pipeline.TestPipeline() as p:
        selected = p | beam.Create(scored_focuses) | SelectTopCoupons(top_k=2, threshold=0.2)

        assert_that(
            selected.chosen,
            equal_to(
                [
                    (first, (CouponPrediction(11, 0.9), CouponPrediction(14, 0.7))),
                    (second, (CouponPrediction(21, 0.3),)),
                ]
            ),
            label='chosen',
        )
        assert_that(selected.ended, equal_to([EndedOffsets.of(none_above.source)]), label='ended')
