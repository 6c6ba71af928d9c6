"""FetchCustomerContext: events in, events paired with their customer's context out.

In:  PCollection[EntryEvent] or PCollection[FocusEvent] (any event with a
     ``customer_id`` and a ``source``).
Out: a tagged result with
     ``contexts``     PCollection[tuple[event, CustomerContext]],
     ``dead_letters`` PCollection[DeadLetter] (reason context_fetch_failed)
     when the central does not answer after its retries.
State: none; a CentralClient per DoFn instance (timeouts, retries with
backoff, bounded concurrency per process; see transforms.central).

An unknown customer (HTTP 404) is not a failure: it is counted
(``contexts.unknown``) and paired with ``CustomerContext.unknown``.

Beam's RequestResponseIO was considered: it re-raises the last error (the
bundle fails, which stops a Prism job) instead of offering a dead-letter
output, and retries at most twice; this DoFn keeps the same shape (a client,
timeouts, backoff, throttling by bounded concurrency) with a dead letter.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.central import CentralClient, CentralConfig, CentralUnavailable
from transforms.messages import dead_letter_for


class _FetchContextFn(beam.DoFn):

  def __init__(self, config: CentralConfig, purpose: str):
    self._config = config
    self._fetched = Metrics.counter('contexts', f'fetched_{purpose}')
    self._unknown = Metrics.counter('contexts', f'unknown_{purpose}')
    self._failed = Metrics.counter('dead_letters', 'context_fetch_failed')
    self._latency = Metrics.distribution('contexts', 'fetch_latency_ms')

  def setup(self) -> None:
    self._client = CentralClient(self._config)

  def process(self, event: Any) -> Iterator[Any]:
    started = time.monotonic()
    try:
      context = self._client.customer_context(event.customer_id)
    except CentralUnavailable as error:
      self._failed.inc()
      yield beam.pvalue.TaggedOutput(
          'dead_letters',
          dead_letter_for(event, 'context_fetch_failed', str(error)))
      return
    self._latency.update(int((time.monotonic() - started) * 1000))
    self._fetched.inc()
    if not context.known:
      self._unknown.inc()
    yield event, context

  def teardown(self) -> None:
    self._client.close()


class FetchCustomerContext(beam.PTransform):
  """Pairs each event with its customer's context from the central."""

  def __init__(self, config: CentralConfig, purpose: str):
    super().__init__()
    self._config = config
    self._purpose = purpose

  def expand(self, events: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
    return events | 'AskTheCentral' >> beam.ParDo(
        _FetchContextFn(self._config, self._purpose)).with_outputs(
            'dead_letters', main='contexts')
