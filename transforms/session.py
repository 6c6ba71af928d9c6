"""CustomerSessions: the customer's context, kept while the customer is around.

In:  ``entries``  PCollection[tuple[EntryEvent, CustomerContext]] and
     ``focuses``  PCollection[FocusEvent], both timestamped with event time.
Out: a tagged result with
     ``ready``            PCollection[tuple[FocusEvent, CustomerContext]]: a
                          focus event with the context of its customer;
     ``waited_too_long``  PCollection[FocusEvent]: a focus event whose
                          customer's context did not arrive within
                          ``max_wait_s``; its context is to be fetched on demand.
State, per customer_id (a stateful DoFn in the global window):
  * the customer's latest context (a repeated entry replaces it);
  * the focus events that arrived before the context (buffered, then
    released when the context arrives);
  * the newest event time seen, and two event-time timers: ``expiry`` at
    newest event time + ``ttl_s`` clears everything, so memory stays bounded
    over days; ``wait`` at the earliest buffered focus time + ``max_wait_s``
    hands those focus events on as ``waited_too_long``.
Event-time timers fire as the watermark passes them (the Kafka read advances
the watermark with the wall clock when a partition is idle), so no
processing-time timer is needed, which keeps the pipeline Prism-eligible.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Union

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (BagStateSpec, ReadModifyWriteStateSpec,
                                              TimerSpec, on_timer)
from apache_beam.utils.timestamp import Timestamp

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

  def __init__(self, config: SessionConfig):
    self._config = config
    self._buffered = Metrics.counter('sessions', 'focus_buffered')
    self._released = Metrics.counter('sessions', 'focus_released')
    self._timed_out = Metrics.counter('sessions', 'focus_timed_out')
    self._enriched = Metrics.counter('sessions', 'focus_enriched_from_state')
    self._contexts = Metrics.counter('sessions', 'contexts_stored')
    self._expired = Metrics.counter('sessions', 'sessions_expired')

  def process(
      self,
      keyed: tuple[int, SessionInput],
      context_state=beam.DoFn.StateParam(CONTEXT),
      waiting_state=beam.DoFn.StateParam(WAITING),
      newest_state=beam.DoFn.StateParam(NEWEST_EVENT_S),
      expiry_timer=beam.DoFn.TimerParam(EXPIRY),
      wait_timer=beam.DoFn.TimerParam(WAIT),
  ) -> Iterator[beam.pvalue.TaggedOutput]:
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
                wait_timer) -> Iterator[beam.pvalue.TaggedOutput]:
    context = context_state.read()
    if context is not None:
      self._enriched.inc()
      yield beam.pvalue.TaggedOutput('ready', (focus, context))
      return
    self._buffered.inc()
    waiting = list(waiting_state.read())
    waiting_state.add(focus)
    earliest_s = min(f.event_time_s for f in waiting + [focus])
    wait_timer.set(Timestamp.of(earliest_s + self._config.max_wait_s))

  def _on_context(self, context: CustomerContext, context_state, waiting_state,
                  wait_timer) -> Iterator[beam.pvalue.TaggedOutput]:
    self._contexts.inc()
    context_state.write(context)
    for focus in waiting_state.read():
      self._released.inc()
      yield beam.pvalue.TaggedOutput('ready', (focus, context))
    waiting_state.clear()
    wait_timer.clear()

  @on_timer(WAIT)
  def on_wait_timeout(
      self,
      fired_at=beam.DoFn.TimestampParam,
      waiting_state=beam.DoFn.StateParam(WAITING),
      wait_timer=beam.DoFn.TimerParam(WAIT),
  ) -> Iterator[beam.pvalue.TaggedOutput]:
    overdue_until_s = float(fired_at) - self._config.max_wait_s
    waiting = list(waiting_state.read())
    still_waiting = [f for f in waiting if f.event_time_s > overdue_until_s]
    for focus in waiting:
      if focus.event_time_s <= overdue_until_s:
        self._timed_out.inc()
        yield beam.pvalue.TaggedOutput('waited_too_long', focus)
    waiting_state.clear()
    for focus in still_waiting:
      waiting_state.add(focus)
    if still_waiting:
      earliest_s = min(f.event_time_s for f in still_waiting)
      wait_timer.set(Timestamp.of(earliest_s + self._config.max_wait_s))

  @on_timer(EXPIRY)
  def on_expiry(
      self,
      context_state=beam.DoFn.StateParam(CONTEXT),
      waiting_state=beam.DoFn.StateParam(WAITING),
      newest_state=beam.DoFn.StateParam(NEWEST_EVENT_S),
      wait_timer=beam.DoFn.TimerParam(WAIT),
  ) -> Iterator[beam.pvalue.TaggedOutput]:
    for focus in waiting_state.read():  # only if max_wait_s >= ttl_s
      self._timed_out.inc()
      yield beam.pvalue.TaggedOutput('waited_too_long', focus)
    self._expired.inc()
    context_state.clear()
    waiting_state.clear()
    newest_state.clear()
    wait_timer.clear()


def _customer_key(event: SessionInput) -> tuple[int, SessionInput]:
  customer_id = event.customer_id if isinstance(event, FocusEvent) else event[0].customer_id
  return customer_id, event


class CustomerSessions(beam.PTransform):
  """Keys entries and focus events by customer and runs their session."""

  def __init__(self, config: SessionConfig):
    super().__init__()
    self._config = config

  def expand(self, inputs: dict[str, beam.PCollection]) -> beam.pvalue.DoOutputsTuple:
    return ((inputs['entries'], inputs['focuses'])
            | 'EntriesAndFocuses' >> beam.Flatten()
            | 'ByCustomer' >> beam.Map(_customer_key)
            | 'Session' >> beam.ParDo(_CustomerSessionFn(self._config)).with_outputs(
                'ready', 'waited_too_long'))
