"""The store traffic stream itself: its events and the deterministic generator of visits.

:class:`StoreTraffic` draws the stream from its settings and seed alone: visits (an entry and
1 to ``MAX_FOCUS_PER_VISIT`` focus events), interleaved, with the configured shares of faulty
traffic. Its :class:`TrafficEvent` objects are not yet messages: :mod:`.encoding` stamps and
encodes them, :mod:`.producer` sends them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from standins.central.generate import DEFAULT_CUSTOMERS, DEPARTMENTS

ENTRY = "entry"
FOCUS = "focus"
MALFORMED_KINDS = (
    "not_utf8",
    "not_json",
    "missing_payload",
    "unknown_event_type",
    "entry_on_focus_topic",
    "customer_id_string",
    "absurd_customer_id",
    "bad_timestamp",
)
MAX_FOCUS_PER_VISIT = 10

DEFAULT_SEED = 7
DEFAULT_CONCURRENT_VISITS = 20
DEFAULT_EARLY_FOCUS_SHARE = 0.05
DEFAULT_UNKNOWN_CUSTOMER_SHARE = 0.02
DEFAULT_MALFORMED_SHARE = 0.01


@dataclass(frozen=True)
class TrafficEvent:
    """One message of the stream, before it is stamped and encoded (see :func:`encode`).

    Attributes:
        topic_kind: ``ENTRY`` or ``FOCUS``, the topic the message goes to.
        customer_id: the visit's customer; the message key.
        payload: the message's payload (for a malformed message, that of the focus event it
            is derived from).
        visit: the visit's sequence number in the stream, from 0.
        malformed: one of :data:`MALFORMED_KINDS`, or None for a valid event.
        before_entry: a valid focus event sent before its visit's entry event.
    """

    topic_kind: str
    customer_id: int
    payload: dict[str, Any]
    visit: int
    malformed: str | None = None
    before_entry: bool = False

    @property
    def is_valid_focus(self) -> bool:
        """Whether this is a well-formed focus event (the events ``--rate`` paces)."""
        return self.topic_kind == FOCUS and self.malformed is None


@dataclass
class _Visit:
    """A visit in progress: its customer, how many focus events it makes and has made."""

    number: int
    customer_id: int
    focus_count: int
    focus_before_entry: int  # the entry follows this many focus events (0: it comes first)
    focus_sent: int = 0


class StoreTraffic:
    """A deterministic, time-ordered stream of store events: the same settings, the same stream."""

    def __init__(
        self,
        *,
        customers: int = DEFAULT_CUSTOMERS,
        departments: int = len(DEPARTMENTS),
        seed: int = DEFAULT_SEED,
        concurrent_visits: int = DEFAULT_CONCURRENT_VISITS,
        early_focus_share: float = DEFAULT_EARLY_FOCUS_SHARE,
        unknown_customer_share: float = DEFAULT_UNKNOWN_CUSTOMER_SHARE,
        malformed_share: float = DEFAULT_MALFORMED_SHARE,
    ) -> None:
        """Describe the traffic; nothing is drawn until :meth:`events`.

        Args:
            customers: known customers are 1..customers; unknown ones customers+1..2*customers.
            departments: focus events are at departments 1..departments.
            seed: seed of the stream's ``random.Random``.
            concurrent_visits: visits in progress at once (their events interleave).
            early_focus_share: expected share of valid focus events sent before their entry.
            unknown_customer_share: share of visits (hence of focus events) by unknown customers.
            malformed_share: malformed messages per valid focus event.

        Raises:
            ValueError: a count is below 1 or a share is outside 0..1.
        """
        for name, count in (("customers", customers), ("departments", departments)):
            if count < 1:
                raise ValueError(f"{name} must be at least 1, not {count}")
        if concurrent_visits < 1:
            raise ValueError(f"concurrent_visits must be at least 1, not {concurrent_visits}")
        shares = {
            "early_focus_share": early_focus_share,
            "unknown_customer_share": unknown_customer_share,
            "malformed_share": malformed_share,
        }
        for name, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be within 0..1, not {share}")
        self.customers = customers
        self.departments = departments
        self.seed = seed
        self.concurrent_visits = concurrent_visits
        self.early_focus_share = early_focus_share
        self.unknown_customer_share = unknown_customer_share
        self.malformed_share = malformed_share

    def events(self, visits: int | None = None) -> Iterator[TrafficEvent]:
        """The stream: ``visits`` complete visits, or an endless stream if None."""
        rng = random.Random(self.seed)
        active: list[_Visit] = []
        opened = malformed = 0
        while True:
            while len(active) < self.concurrent_visits and (visits is None or opened < visits):
                visit = self._open_visit(rng, opened, {v.customer_id for v in active})
                opened += 1
                active.append(visit)
                if visit.focus_before_entry == 0:
                    yield _entry(visit)
            if not active:
                return
            visit = active[rng.randrange(len(active))]
            focus = self._focus(rng, visit)
            visit.focus_sent += 1
            yield focus
            if visit.focus_sent == visit.focus_before_entry:
                yield _entry(visit)
            if rng.random() < self.malformed_share:
                yield _malformed(focus, MALFORMED_KINDS[malformed % len(MALFORMED_KINDS)])
                malformed += 1
            if visit.focus_sent == visit.focus_count:
                active.remove(visit)

    def _open_visit(self, rng: random.Random, number: int, busy: set[int]) -> _Visit:
        """A new visit, by a customer not already in the store if one is found in a few draws."""
        unknown = rng.random() < self.unknown_customer_share
        low = self.customers + 1 if unknown else 1
        customer_id = rng.randint(low, low + self.customers - 1)
        for _ in range(10):
            if customer_id not in busy:
                break
            customer_id = rng.randint(low, low + self.customers - 1)
        focus_count = rng.randint(1, MAX_FOCUS_PER_VISIT)
        # Each focus event is "early" with the configured probability; the entry follows
        # that many focus events, so the expected early share is exactly the configured one.
        early = sum(rng.random() < self.early_focus_share for _ in range(focus_count))
        return _Visit(number, customer_id, focus_count, early)

    def _focus(self, rng: random.Random, visit: _Visit) -> TrafficEvent:
        """The visit's next focus event, at a random department."""
        payload = {
            "customer_id": visit.customer_id,
            "department_id": rng.randint(1, self.departments),
        }
        before_entry = visit.focus_sent < visit.focus_before_entry
        return TrafficEvent(
            FOCUS, visit.customer_id, payload, visit.number, before_entry=before_entry
        )


def _entry(visit: _Visit) -> TrafficEvent:
    """The visit's entry event."""
    return TrafficEvent(ENTRY, visit.customer_id, {"customer_id": visit.customer_id}, visit.number)


def _malformed(focus: TrafficEvent, kind: str) -> TrafficEvent:
    """A malformed message of ``kind`` derived from the valid ``focus`` event, for the focus topic."""
    return TrafficEvent(FOCUS, focus.customer_id, dict(focus.payload), focus.visit, malformed=kind)
