"""Quarantine: the last line against an input record that fails the job.

Nothing in the pipeline should raise on a record (bad input becomes a dead letter, a
refused write too), but a bug can: an exception that escapes a DoFn fails the job on
Prism, and a restart reads the same uncommitted record again, and fails again. So the
DoFns that run the service's own logic on one record at a time (the context fetch, the
customer session, the coupon lookup, the selection) process it inside
``FailureJournal.watch(source)``: an exception that escapes is written to the journal
(the record's position, the error, the start it happened in), then raised again.

At start, ``FailureJournal.begin`` counts the start, and ``quarantined`` names the records
that failed the job on each of the last ``after`` starts: the parser turns them into
``poison_pill`` dead letters instead of processing them again (transforms.events).

State: a JSON file, one per consumer group (``FAILURE_JOURNAL``):
``{"start": n, "failures": {"topic/partition/offset": {"starts": [...], "error": "..."}}}``,
updated under an exclusive lock. It is shared by the processes of one host (Prism's
LOOPBACK worker is the pipeline's own process); a cluster needs a shared path.

``fail_on`` is a test hook: the record at that position raises inside ``watch``, as a bug
would (``TEST_FAIL_ON_RECORD``; never set in production).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Optional

from transforms.domain import SourcePosition

_LOGGER = logging.getLogger(__name__)
TEST_HOOK_ENV = 'TEST_FAIL_ON_RECORD'


class InjectedFailure(RuntimeError):
    """Raised by the test hook."""


@dataclasses.dataclass(frozen=True)
class FailureJournal:
    """The journal of one consumer group, as seen by one start of the pipeline."""

    path: str
    start: int
    fail_on: Optional[str] = None

    @classmethod
    def begin(cls, path: str) -> 'FailureJournal':
        """Counts a new start in the journal at ``path`` (created if absent)."""
        with _locked(Path(path)) as journal:
            journal['start'] = journal.get('start', 0) + 1
            start = journal['start']
        return cls(path, start, os.environ.get(TEST_HOOK_ENV) or None)

    def quarantined(self, after: int) -> dict[str, str]:
        """Position -> error of the records that failed the job on each of the ``after``
        starts before this one."""
        wanted = set(range(self.start - after, self.start))
        with _locked(Path(self.path)) as journal:
            failures = journal.get('failures', {})
        return {
            position: failure['error']
            for position, failure in failures.items()
            if wanted <= set(failure['starts'])
        }

    @contextlib.contextmanager
    def watch(self, source: SourcePosition) -> Iterator[None]:
        """Runs the block; an exception escaping it is journaled under ``source`` and raised."""
        try:
            if source.event_id == self.fail_on:
                raise InjectedFailure(f'{TEST_HOOK_ENV}={self.fail_on}')
            yield
        except Exception as error:
            self._record(source, f'{type(error).__name__}: {error}')
            raise

    def _record(self, source: SourcePosition, error: str) -> None:
        _LOGGER.error('record %s failed the job (start %d): %s', source.event_id, self.start, error)
        with _locked(Path(self.path)) as journal:
            failure = journal.setdefault('failures', {}).setdefault(
                source.event_id, {'starts': [], 'error': error}
            )
            failure['starts'] = sorted(set(failure['starts']) | {self.start})
            failure['error'] = error


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any]]:
    """The journal's content, written back on leaving, under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a+') as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        text = file.read()
        journal = json.loads(text) if text.strip() else {}
        yield journal
        file.seek(0)
        file.truncate()
        json.dump(journal, file)


def watching(
    journal: Optional[FailureJournal], source: SourcePosition
) -> contextlib.AbstractContextManager:
    """``journal.watch(source)``, or nothing to watch with when there is no journal."""
    return contextlib.nullcontext() if journal is None else journal.watch(source)
