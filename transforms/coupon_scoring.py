"""CouponScoring: store-event records in, the coupons to show for each focus event out.

The part of the service that live traffic and a replay of the past share:

  records ── ParseStoreEvents
      entries ── FetchContextOnEntry ──┐
      focuses ─────────────────────────┴── CustomerSessions (keyed by customer)
          ── AttachCandidateCoupons ── ScoreCoupons ── SelectTopCoupons

In:  PCollection[KafkaRecord] of the entry topic and the focus topic.
Out: ``chosen``        PCollection[tuple[FocusEvent, tuple[CouponPrediction, ...]]]: the
                        coupons above the threshold, best first, at most top K;
     ``focuses``       PCollection[FocusEvent]: every valid focus event (what a replay
                        reports on, with or without coupons);
     ``dead_letters``  PCollection[DeadLetter] of every stage here;
     ``ended``         PCollection[EndedOffsets]: records whose outcome is complete here
                        (an entry's context stored, a focus event with no coupon above the
                        threshold).
State: the customer sessions (transforms.session) and each worker's coupon catalogue
(transforms.coupons).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import apache_beam as beam

from transforms.central import CentralConfig
from transforms.context import FetchCustomerContext
from transforms.coupons import AttachCandidateCoupons
from transforms.events import ParseStoreEvents
from transforms.quarantine import FailureJournal
from transforms.scoring import ScoreCoupons, ScorerConfig
from transforms.selection import SelectTopCoupons
from transforms.session import CustomerSessions, SessionConfig


@dataclasses.dataclass(frozen=True)
class ScoringConfig:
    """Where the events come from and how they are scored."""

    entry_topic: str
    focus_topic: str
    central: CentralConfig
    scorer: ScorerConfig
    session: SessionConfig
    catalogue_refresh_s: float
    top_k: int
    prediction_threshold: float


class CouponScoring(beam.PTransform):
    """Parses store events, keeps each customer's context, scores and selects coupons.
    ``quarantined``: records that failed the job on consecutive starts (position -> error),
    dead-lettered as ``poison_pill``; ``journal``: where this start's failures are noted."""

    def __init__(
        self,
        config: ScoringConfig,
        journal: Optional[FailureJournal] = None,
        quarantined: Optional[dict[str, str]] = None,
    ):
        super().__init__()
        self._config = config
        self._journal = journal
        self._quarantined = quarantined or {}

    def expand(self, records: beam.PCollection) -> dict[str, beam.PCollection]:
        config, journal = self._config, self._journal
        events = records | 'ParseStoreEvents' >> ParseStoreEvents(
            config.entry_topic, config.focus_topic, self._quarantined
        )
        entry_contexts = events.entries | 'FetchContextOnEntry' >> FetchCustomerContext(
            config.central, journal
        )
        sessions = {
            'entries': entry_contexts.contexts,
            'focuses': events.focuses,
        } | 'CustomerSessions' >> CustomerSessions(config.session, config.central, journal)
        candidates = sessions['ready'] | 'AttachCandidateCoupons' >> AttachCandidateCoupons(
            config.central, config.catalogue_refresh_s, journal
        )
        scored = candidates.enriched | 'ScoreCoupons' >> ScoreCoupons(config.scorer)
        selected = scored['scored'] | 'SelectTopCoupons' >> SelectTopCoupons(
            config.top_k, config.prediction_threshold, journal
        )
        dead_letters = (
            events.dead_letters,
            entry_contexts.dead_letters,
            candidates.dead_letters,
            scored['dead_letters'],
        ) | 'ScoringDeadLetters' >> beam.Flatten()
        ended = (sessions['entries_ended'], selected.ended) | 'ScoringEnded' >> beam.Flatten()
        return {
            'chosen': selected.chosen,
            'focuses': events.focuses,
            'dead_letters': dead_letters,
            'ended': ended,
        }
