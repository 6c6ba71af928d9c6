"""CustomerSessions: the customer's context, kept while the customer is around.

In:  ``entries``  PCollection[tuple[EntryEvent, CustomerContext]] and
     ``focuses``  PCollection[FocusEvent], both timestamped with event time.
Out: PCollection[tuple[FocusEvent, CustomerContext]]: every focus event, once,
     with the context of its customer (the default one if the central could
     not be reached).
State, per customer_id (a stateful DoFn in the global window):
  * the customer's latest context (a repeated entry replaces it);
  * the focus events that arrived before the context (buffered, then
    released when the context arrives);
  * the newest event time seen, and two event-time timers: ``expiry`` at
    newest event time + ``ttl_s`` clears everything, so memory stays bounded
    over days; ``wait`` at the earliest buffered focus time + ``max_wait_s``
    fetches the context on demand from the central (the entry may never
    come, or its fetch failed), keeps it as the customer's context and
    releases every waiting focus event with it. If the central does not
    answer that fetch either, the waiting focus events leave with the
    documented default context (no profile), counted in
    ``sessions.focus_with_default_context``, and nothing is kept, so the
    customer's next focus event asks the central again: a customer standing
    at a screen gets generic coupons rather than none.
Event-time timers fire as the watermark passes them (the Kafka read advances
the watermark with the wall clock when a partition is idle), so no
processing-time timer is needed, which keeps the pipeline Prism-eligible.
Fetching on demand here, rather than in a later transform, keeps the focus
path one shuffle long and lets later focus events of that customer use it.

Prism 2.73 can release one buffered focus event twice, once by its entry and
once by the wait timer (seen under load: focus_released + focus_timed_out
exceeded focus_buffered by exactly the duplicates), which suggests it runs a
key's timer while a bundle with that key's entry is still open. The released
focus events therefore pass ``_DropRepeatedFocusFn``, which drops a focus_id
this worker process released in the last ``_RECENT_FOCUS_IDS`` releases; it
sits in the same fused stage as the session, so a key's repeats meet there.
"""
from __future__ import annotations

import collections
import dataclasses
import threading
import typing
import uuid
from typing import Iterator, Union

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (BagStateSpec, ReadModifyWriteStateSpec,
                                              TimerSpec, on_timer)
from apache_beam.utils import shared
from apache_beam.utils.timestamp import Timestamp

from transforms.central import CentralConfig, CentralUnavailable
from transforms.context import ContextFetcher
from transforms.domain import CustomerContext, EntryEvent, FocusEvent

SessionInput = Union[tuple[EntryEvent, CustomerContext], FocusEvent]


@dataclasses.dataclass(frozen=True)
class SessionConfig:
  ttl_s: float = 4 * 3600.0
  max_wait_s: float = 5.0


class _CustomerSessionFn(beam.DoFn):
  CONTEXT = ReadModifyWriteStateSpec('context', coders.PickleCoder())
  WAITING = BagStateSpec('waiting', coders.PickleCoder())
  NEWEST_EVENT_S = ReadModifyWriteStateSpec('newest_event_s', coders.FloatCoder())
  EXPIRY = TimerSpec('expiry', TimeDomain.WATERMARK)
  WAIT = TimerSpec('wait', TimeDomain.WATERMARK)

  def __init__(self, config: SessionConfig, central: CentralConfig):
    self._config = config
    self._central = central
    self._buffered = Metrics.counter('sessions', 'focus_buffered')
    self._released = Metrics.counter('sessions', 'focus_released')
    self._timed_out = Metrics.counter('sessions', 'focus_timed_out')
    self._enriched = Metrics.counter('sessions', 'focus_enriched_from_state')
    self._contexts = Metrics.counter('sessions', 'contexts_stored')
    self._expired = Metrics.counter('sessions', 'sessions_expired')
    self._defaulted = Metrics.counter('sessions', 'focus_with_default_context')

  def setup(self) -> None:
    self._fetcher = ContextFetcher(self._central, 'on_demand')

  def teardown(self) -> None:
    self._fetcher.close()

  def process(
      self,
      keyed: tuple[int, SessionInput],
      context_state=beam.DoFn.StateParam(CONTEXT),
      waiting_state=beam.DoFn.StateParam(WAITING),
      newest_state=beam.DoFn.StateParam(NEWEST_EVENT_S),
      expiry_timer=beam.DoFn.TimerParam(EXPIRY),
      wait_timer=beam.DoFn.TimerParam(WAIT),
  ) -> Iterator[object]:
    _, event = keyed
    if isinstance(event, FocusEvent):
      yield from self._on_focus(event, context_state, waiting_state, wait_timer)
      event_time_s = event.event_time_s
    else:
      entry, context = event
      yield from self._on_context(context, context_state, waiting_state, wait_timer)
      event_time_s = entry.event_time_s
    newest_s = max(newest_state.read() or event_time_s, event_time_s)
    newest_state.write(newest_s)
    expiry_timer.set(Timestamp.of(newest_s + self._config.ttl_s))

  def _on_focus(self, focus: FocusEvent, context_state, waiting_state,
                wait_timer) -> Iterator[object]:
    context = context_state.read()
    if context is not None:
      self._enriched.inc()
      yield focus, context
      return
    self._buffered.inc()
    waiting = list(waiting_state.read())
    waiting_state.add(focus)
    earliest_s = min(f.event_time_s for f in waiting + [focus])
    wait_timer.set(Timestamp.of(earliest_s + self._config.max_wait_s))

  def _on_context(self, context: CustomerContext, context_state, waiting_state,
                  wait_timer) -> Iterator[object]:
    self._contexts.inc()
    context_state.write(context)
    for focus in waiting_state.read():
      self._released.inc()
      yield focus, context
    waiting_state.clear()
    wait_timer.clear()

  @on_timer(WAIT)
  def on_wait_timeout(
      self,
      context_state=beam.DoFn.StateParam(CONTEXT),
      waiting_state=beam.DoFn.StateParam(WAITING),
  ) -> Iterator[object]:
    yield from self._fetch_for_waiting(context_state, waiting_state)

  @on_timer(EXPIRY)
  def on_expiry(
      self,
      context_state=beam.DoFn.StateParam(CONTEXT),
      waiting_state=beam.DoFn.StateParam(WAITING),
      newest_state=beam.DoFn.StateParam(NEWEST_EVENT_S),
      wait_timer=beam.DoFn.TimerParam(WAIT),
  ) -> Iterator[object]:
    yield from self._fetch_for_waiting(context_state, waiting_state)  # if ttl < max wait
    self._expired.inc()
    context_state.clear()
    newest_state.clear()
    wait_timer.clear()

  def _fetch_for_waiting(self, context_state, waiting_state) -> Iterator[object]:
    """Fetches the context on demand, keeps it, and releases every waiting focus event."""
    waiting = list(waiting_state.read())
    waiting_state.clear()
    if not waiting:
      return
    self._timed_out.inc(len(waiting))
    customer_id = waiting[0].customer_id
    try:
      context = self._fetcher.fetch(customer_id)
      context_state.write(context)
    except CentralUnavailable:
      self._defaulted.inc(len(waiting))
      context = CustomerContext.unknown(customer_id)
    for focus in waiting:
      yield focus, context


_RECENT_FOCUS_IDS = 100_000


class _RecentFocusIds:
  """The focus ids released lately in this process (bounded, thread-safe)."""

  def __init__(self, capacity: int):
    self._capacity = capacity
    self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
    self._lock = threading.Lock()

  def first_time(self, focus_id: str) -> bool:
    with self._lock:
      if focus_id in self._ids:
        return False
      self._ids[focus_id] = None
      if len(self._ids) > self._capacity:
        self._ids.popitem(last=False)
      return True


class _DropRepeatedFocusFn(beam.DoFn):
  """Drops a focus event released before; the memory is shared by the DoFn
  instances of one pipeline in one process (beam.utils.shared)."""

  def __init__(self):
    self._shared = shared.Shared()
    self._tag = uuid.uuid4().hex  # one memory per pipeline, not per process
    self._dropped = Metrics.counter('sessions', 'focus_repeat_dropped')

  def setup(self) -> None:
    self._released = self._shared.acquire(lambda: _RecentFocusIds(_RECENT_FOCUS_IDS),
                                          tag=self._tag)

  def process(self, ready: tuple[FocusEvent, CustomerContext]
              ) -> Iterator[tuple[FocusEvent, CustomerContext]]:
    if self._released.first_time(ready[0].focus_id):
      yield ready
    else:
      self._dropped.inc()


def _customer_key(event: SessionInput) -> tuple[int, SessionInput]:
  customer_id = event.customer_id if isinstance(event, FocusEvent) else event[0].customer_id
  return customer_id, event


class CustomerSessions(beam.PTransform):
  """Keys entries and focus events by customer and runs their session."""

  def __init__(self, config: SessionConfig, central: CentralConfig):
    super().__init__()
    self._config = config
    self._central = central

  def expand(self, inputs: dict[str, beam.PCollection]
             ) -> beam.PCollection[tuple[FocusEvent, CustomerContext]]:
    return ((inputs['entries'], inputs['focuses'])
            | 'EntriesAndFocuses' >> beam.Flatten()
            | 'ByCustomer' >> beam.Map(_customer_key).with_output_types(
                beam.typehints.KV[int, typing.Any])
            | 'Session' >> beam.ParDo(_CustomerSessionFn(self._config, self._central))
            | 'DropRepeatedFocus' >> beam.ParDo(_DropRepeatedFocusFn()))
