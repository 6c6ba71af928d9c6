"""SelectTopCoupons: scored focus events in, the coupons worth showing out.

In:  PCollection[ScoredFocus].
Out: ``chosen``  PCollection[tuple[FocusEvent, tuple[CouponPrediction, ...]]]:
                 at most ``top_k`` coupons per focus event, each with a prediction
                 >= ``threshold``, best first; ties are broken by the lower
                 coupon_id, so the choice is deterministic.
     ``ended``   PCollection[EndedOffsets]: a focus event with no coupon above
                 the threshold ends here, counted
                 (``selection.no_coupon_above_threshold``).
State: none.
"""

from __future__ import annotations

from typing import Iterator, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.domain import CouponPrediction, EndedOffsets, ScoredFocus
from transforms.quarantine import FailureJournal, watching


def top_coupons(
    predictions: tuple[CouponPrediction, ...], top_k: int, threshold: float
) -> list[CouponPrediction]:
    """The best ``top_k`` predictions at or above ``threshold``."""
    eligible = [p for p in predictions if p.prediction >= threshold]
    return sorted(eligible, key=lambda p: (-p.prediction, p.coupon_id))[:top_k]


class _SelectFn(beam.DoFn):
    def __init__(self, top_k: int, threshold: float, journal: Optional[FailureJournal]):
        self._top_k = top_k
        self._threshold = threshold
        self._journal = journal
        self._none = Metrics.counter('selection', 'no_coupon_above_threshold')
        self._selected = Metrics.counter('selection', 'focus_with_coupons')

    def process(self, scored: ScoredFocus) -> Iterator[object]:
        with watching(self._journal, scored.focus.source):
            yield from self._select(scored)

    def _select(self, scored: ScoredFocus) -> Iterator[object]:
        chosen = top_coupons(scored.predictions, self._top_k, self._threshold)
        if chosen:
            self._selected.inc()
            yield scored.focus, tuple(chosen)
        else:
            self._none.inc()
            yield beam.pvalue.TaggedOutput('ended', EndedOffsets.of(scored.focus.source))


class SelectTopCoupons(beam.PTransform):
    """Keeps the top K coupons above the threshold for each focus event."""

    def __init__(self, top_k: int, threshold: float, journal: Optional[FailureJournal] = None):
        super().__init__()
        self._top_k = top_k
        self._threshold = threshold
        self._journal = journal

    def expand(self, scored: beam.PCollection[ScoredFocus]) -> beam.pvalue.DoOutputsTuple:
        return scored | 'TopK' >> beam.ParDo(
            _SelectFn(self._top_k, self._threshold, self._journal)
        ).with_outputs('ended', main='chosen')
