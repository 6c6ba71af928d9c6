"""AttachCandidateCoupons: a focus event with context in, the same with the
focused department's coupons out.

In:  PCollection[tuple[FocusEvent, CustomerContext]].
Out: a tagged result with
     ``enriched``     PCollection[EnrichedFocus];
     ``dead_letters`` PCollection[DeadLetter]: reason ``unknown_department``
                      for a department the catalogue lacks, or
                      ``context_fetch_failed`` if the catalogue cannot be
                      loaded at all.
State: the coupon catalogue, one per worker process (shared by its DoFn
instances through ``beam.utils.shared``), loaded from the central and reloaded
every ``refresh_s`` (a failed reload keeps the last good one). Shared, so that
a DoFn instance started while the central is down still has the coupons the
process loaded before (per instance, such instances had none: measured, 629
of 686 focus events dead-lettered during a central outage).

Design: the catalogue is small (tens of coupons per department) and changes
rarely, so each worker caches it instead of taking it as a side input from a
PeriodicImpulse: no side-input windowing to align with the unbounded main
input, and a failed reload degrades to slightly stale coupons, not to a stall.
"""

from __future__ import annotations

import uuid
from typing import Iterator, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from transforms.central import CachedCatalogue, CentralClient, CentralConfig, CentralUnavailable
from transforms.domain import CustomerContext, EnrichedFocus, FocusEvent
from transforms.messages import dead_letter_for
from transforms.quarantine import FailureJournal, watching


class _AttachCouponsFn(beam.DoFn):
    def __init__(self, config: CentralConfig, refresh_s: float, journal: Optional[FailureJournal]):
        self._config = config
        self._refresh_s = refresh_s
        self._journal = journal
        self._shared = shared.Shared()
        self._tag = uuid.uuid4().hex  # one catalogue per pipeline and process
        self._unknown_department = Metrics.counter('dead_letters', 'unknown_department')
        self._unavailable = Metrics.counter('dead_letters', 'context_fetch_failed')

    def setup(self) -> None:
        self._catalogue = self._shared.acquire(
            lambda: CachedCatalogue(CentralClient(self._config), self._refresh_s), tag=self._tag
        )

    def process(self, focus_with_context: tuple[FocusEvent, CustomerContext]) -> Iterator[object]:
        with watching(self._journal, focus_with_context[0].source):
            yield from self._attach(*focus_with_context)

    def _attach(self, focus: FocusEvent, context: CustomerContext) -> Iterator[object]:
        try:
            coupons = self._catalogue.coupons_of(focus.department_id)
        except CentralUnavailable as error:
            self._unavailable.inc()
            yield beam.pvalue.TaggedOutput(
                'dead_letters',
                dead_letter_for(focus, 'context_fetch_failed', f'coupon catalogue: {error}'),
            )
            return
        if not coupons:
            self._unknown_department.inc()
            yield beam.pvalue.TaggedOutput(
                'dead_letters',
                dead_letter_for(
                    focus, 'unknown_department', f'department {focus.department_id} has no coupons'
                ),
            )
            return
        yield EnrichedFocus(focus, context, coupons)


class AttachCandidateCoupons(beam.PTransform):
    """Adds the focused department's coupons from the central's catalogue."""

    def __init__(
        self, config: CentralConfig, refresh_s: float, journal: Optional[FailureJournal] = None
    ):
        super().__init__()
        self._config = config
        self._refresh_s = refresh_s
        self._journal = journal

    def expand(self, focuses: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return focuses | 'AddCoupons' >> beam.ParDo(
            _AttachCouponsFn(self._config, self._refresh_s, self._journal)
        ).with_outputs('dead_letters', main='enriched')
