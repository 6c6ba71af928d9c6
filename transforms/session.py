"""CustomerSessions: the customer's context, kept while the customer is around.

In:  ``entries``  PCollection[tuple[EntryEvent, CustomerContext]] and
     ``focuses``  PCollection[FocusEvent], both timestamped with event time.
Out: ``ready``          PCollection[tuple[FocusEvent, CustomerContext]]: every
                         focus event, once, with the context of its customer;
     ``entries_ended``  PCollection[EndedOffsets]: an entry event ends here, its
                         context stored.
State, per customer_id (a stateful DoFn in the global window): one cell with the
customer's latest context (a repeated entry replaces it) and the newest event
time seen, and an event-time timer at newest event time + ``ttl_s`` that clears
it, so memory stays bounded over days (the expiry time is rounded up to a one-minute
grid: a minute's sessions expire in one timer bundle). One cell, because every state read is a
round trip to the runner (Prism gives no cache tokens, so nothing is cached
across bundles): two cells doubled the session's waits.

A focus event whose customer has no context here (it came before its entry,
the entry never came, or the entry's fetch failed) does not wait: the session
fetches the context from the central at once and keeps it, because the
customer is standing at the screen now. If the central does not answer (after
its retries: the bounded wait), the focus event goes on with the documented
default context (no profile, counted in ``sessions.focus_with_default_context``)
and nothing is kept, so the customer's next focus event asks again: generic
coupons rather than none. An entry arriving later replaces the context.

Why no buffering until the entry comes (an earlier design, with a wait timer
per buffered focus event): on Prism 2.73 it lost or repeated a buffered focus
event now and then under load (focus_buffered != focus_released +
focus_timed_out), and it delayed every early focus event by the wait.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Iterator, Optional, Union

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from transforms.central import CentralConfig, CentralUnavailable
from transforms.context import ContextFetcher
from transforms.domain import CustomerContext, EndedOffsets, EntryEvent, FocusEvent
from transforms.quarantine import FailureJournal, watching

ENTRIES_ENDED = 'entries_ended'
SessionInput = Union[tuple[EntryEvent, CustomerContext], FocusEvent]


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    ttl_s: float = 4 * 3600.0
    # Expiry times are rounded up to this grid, so that the sessions of a minute expire in one
    # timer bundle: on Prism every bundle a stateful stage runs scans all its keys.
    expiry_grid_s: float = 60.0

    def expiry_s(self, newest_event_s: float) -> float:
        """When a session whose newest event was at ``newest_event_s`` expires."""
        return math.ceil((newest_event_s + self.ttl_s) / self.expiry_grid_s) * self.expiry_grid_s


@dataclasses.dataclass(frozen=True)
class _Session:
    """What the session keeps of a customer: the context, if known, and the newest event time."""

    context: Optional[CustomerContext]
    newest_event_s: float

    def seen_at(self, event_time_s: float) -> _Session:
        return dataclasses.replace(self, newest_event_s=max(self.newest_event_s, event_time_s))


class _CustomerSessionFn(beam.DoFn):
    SESSION = ReadModifyWriteStateSpec('session', coders.PickleCoder())
    EXPIRY = TimerSpec('expiry', TimeDomain.WATERMARK)

    def __init__(
        self, config: SessionConfig, central: CentralConfig, journal: Optional[FailureJournal]
    ):
        self._config = config
        self._central = central
        self._journal = journal
        self._from_state = Metrics.counter('sessions', 'focus_enriched_from_state')
        self._defaulted = Metrics.counter('sessions', 'focus_with_default_context')
        self._contexts = Metrics.counter('sessions', 'contexts_stored')
        self._expired = Metrics.counter('sessions', 'sessions_expired')

    def setup(self) -> None:
        self._fetcher = ContextFetcher(self._central, 'on_demand')

    def teardown(self) -> None:
        self._fetcher.close()

    def process(
        self,
        keyed: tuple[int, SessionInput],
        session_state=beam.DoFn.StateParam(SESSION),
        expiry_timer=beam.DoFn.TimerParam(EXPIRY),
    ) -> Iterator[object]:
        _, event = keyed
        focus = event if isinstance(event, FocusEvent) else None
        with watching(self._journal, focus.source if focus else event[0].source):
            event_time_s = focus.event_time_s if focus else event[0].event_time_s
            session = (session_state.read() or _Session(None, event_time_s)).seen_at(event_time_s)
            if focus:
                context, known = self._context_for(focus, session.context)
                yield focus, context
                session = dataclasses.replace(session, context=known)
            else:
                entry, context = event
                self._contexts.inc()
                session = dataclasses.replace(session, context=context)
                yield beam.pvalue.TaggedOutput(ENTRIES_ENDED, EndedOffsets.of(entry.source))
        session_state.write(session)
        expiry_timer.set(Timestamp.of(self._config.expiry_s(session.newest_event_s)))

    def _context_for(
        self, focus: FocusEvent, stored: Optional[CustomerContext]
    ) -> tuple[CustomerContext, Optional[CustomerContext]]:
        """The context to score ``focus`` with, and the one to keep: the stored one, else the
        central's (then kept), else the default one (nothing kept, so the next asks again)."""
        if stored is not None:
            self._from_state.inc()
            return stored, stored
        try:
            context = self._fetcher.fetch(focus.customer_id)
        except CentralUnavailable:
            self._defaulted.inc()
            return CustomerContext.unknown(focus.customer_id), None
        self._contexts.inc()
        return context, context

    @on_timer(EXPIRY)
    def on_expiry(self, session_state=beam.DoFn.StateParam(SESSION)) -> None:
        self._expired.inc()
        session_state.clear()


def _customer_key(event: SessionInput) -> tuple[int, SessionInput]:
    customer_id = event.customer_id if isinstance(event, FocusEvent) else event[0].customer_id
    return customer_id, event


def _by_customer() -> beam.PTransform:
    return beam.Map(_customer_key).with_output_types(beam.typehints.KV[int, typing.Any])


class CustomerSessions(beam.PTransform):
    """Keys entries and focus events by customer and runs their session."""

    def __init__(
        self,
        config: SessionConfig,
        central: CentralConfig,
        journal: Optional[FailureJournal] = None,
    ):
        super().__init__()
        self._config = config
        self._central = central
        self._journal = journal

    def expand(self, inputs: dict[str, beam.PCollection]) -> dict[str, beam.PCollection]:
        # Keyed before the Flatten, so the keying runs in the stages that make the events
        # (a stage of its own after the Flatten cost every event one more bundle on Prism).
        sessions = (
            (
                inputs['entries'] | 'EntriesByCustomer' >> _by_customer(),
                inputs['focuses'] | 'FocusesByCustomer' >> _by_customer(),
            )
            | 'EntriesAndFocuses' >> beam.Flatten()
            | 'Session'
            >> beam.ParDo(
                _CustomerSessionFn(self._config, self._central, self._journal)
            ).with_outputs(ENTRIES_ENDED, main='ready')
        )
        return {'ready': sessions.ready, ENTRIES_ENDED: sessions[ENTRIES_ENDED]}
