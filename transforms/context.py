"""FetchCustomerContext: entry events in, entry events with their customer's context out.

In:  PCollection[EntryEvent].
Out: a tagged result with
     ``contexts``     PCollection[tuple[EntryEvent, CustomerContext]],
     ``dead_letters`` PCollection[DeadLetter] (reason context_fetch_failed)
                      when the central does not answer after its retries.
State: none; a ContextFetcher per DoFn instance (a CentralClient: timeouts,
retries with backoff, bounded concurrency per process; see transforms.central).

An unknown customer (HTTP 404) is not a failure: it is counted
(``contexts.unknown_<purpose>``) and paired with ``CustomerContext.unknown``.
``ContextFetcher`` is shared with the customer session, which fetches on
demand for a focus event whose entry never came (and, when that fetch fails
too, scores the focus event with the default context: see transforms.session).

Beam's RequestResponseIO was considered: it re-raises the last error (the
bundle fails, which stops a Prism job) instead of offering a dead-letter
output, and retries at most twice; ContextFetcher keeps the same shape (a
client, timeouts, backoff, throttling by bounded concurrency) with a dead letter.
"""

from __future__ import annotations

import time
from typing import Iterator, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.central import CentralClient, CentralConfig, CentralUnavailable
from transforms.domain import CustomerContext, EntryEvent
from transforms.messages import dead_letter_for
from transforms.quarantine import FailureJournal, watching


class ContextFetcher:
    """Fetches contexts from the central and counts what happened; create it in setup()."""

    def __init__(self, config: CentralConfig, purpose: str):
        self._client = CentralClient(config)
        self._fetched = Metrics.counter('contexts', f'fetched_{purpose}')
        self._unknown = Metrics.counter('contexts', f'unknown_{purpose}')
        self._failed = Metrics.counter('contexts', f'fetch_failed_{purpose}')
        self._latency = Metrics.distribution('contexts', 'fetch_latency_ms')

    def fetch(self, customer_id: int) -> CustomerContext:
        """The customer's context; raises CentralUnavailable after the retries."""
        started = time.monotonic()
        try:
            context = self._client.customer_context(customer_id)
        except CentralUnavailable:
            self._failed.inc()
            raise
        self._latency.update(int((time.monotonic() - started) * 1000))
        self._fetched.inc()
        if not context.known:
            self._unknown.inc()
        return context

    def close(self) -> None:
        self._client.close()


class _FetchContextFn(beam.DoFn):
    def __init__(self, config: CentralConfig, journal: Optional[FailureJournal]):
        self._config = config
        self._journal = journal

    def setup(self) -> None:
        self._fetcher = ContextFetcher(self._config, 'on_entry')
        self._failed = Metrics.counter('dead_letters', 'context_fetch_failed')

    def process(self, entry: EntryEvent) -> Iterator[object]:
        with watching(self._journal, entry.source):
            yield from self._fetch(entry)

    def _fetch(self, entry: EntryEvent) -> Iterator[object]:
        try:
            yield entry, self._fetcher.fetch(entry.customer_id)
        except CentralUnavailable as error:
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(
                'dead_letters', dead_letter_for(entry, 'context_fetch_failed', str(error))
            )

    def teardown(self) -> None:
        self._fetcher.close()


class FetchCustomerContext(beam.PTransform):
    """Pairs each entry event with its customer's context from the central."""

    def __init__(self, config: CentralConfig, journal: Optional[FailureJournal] = None):
        super().__init__()
        self._config = config
        self._journal = journal

    def expand(self, entries: beam.PCollection[EntryEvent]) -> beam.pvalue.DoOutputsTuple:
        return entries | 'AskTheCentral' >> beam.ParDo(
            _FetchContextFn(self._config, self._journal)
        ).with_outputs('dead_letters', main='contexts')
