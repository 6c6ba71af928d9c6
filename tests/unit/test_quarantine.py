"""FailureJournal: a record that failed the job on consecutive starts is quarantined."""

from __future__ import annotations

import pytest

from transforms.domain import SourcePosition
from transforms.quarantine import TEST_HOOK_ENV, FailureJournal, InjectedFailure

PILL = SourcePosition('store.focus', 1, 42)
OTHER = SourcePosition('store.focus', 0, 7)


def fail_once(journal: FailureJournal, source: SourcePosition) -> None:
    with pytest.raises(ZeroDivisionError):
        with journal.watch(source):
            raise ZeroDivisionError('a bug')


def test_each_start_is_counted(tmp_path):
    path = str(tmp_path / 'journal.json')

    assert [FailureJournal.begin(path).start for _ in range(3)] == [1, 2, 3]


def test_a_record_failing_on_two_consecutive_starts_is_quarantined_on_the_next(tmp_path):
    path = str(tmp_path / 'journal.json')
    fail_once(FailureJournal.begin(path), PILL)
    fail_once(FailureJournal.begin(path), PILL)

    quarantined = FailureJournal.begin(path).quarantined(after=2)

    assert list(quarantined) == [PILL.event_id]
    assert 'ZeroDivisionError' in quarantined[PILL.event_id]


def test_one_failure_is_retried_not_quarantined(tmp_path):
    path = str(tmp_path / 'journal.json')
    fail_once(FailureJournal.begin(path), PILL)

    assert FailureJournal.begin(path).quarantined(after=2) == {}


def test_failures_on_starts_that_are_not_consecutive_do_not_quarantine(tmp_path):
    path = str(tmp_path / 'journal.json')
    fail_once(FailureJournal.begin(path), PILL)
    FailureJournal.begin(path)  # a start on which it did not fail
    fail_once(FailureJournal.begin(path), PILL)

    assert FailureJournal.begin(path).quarantined(after=2) == {}


def test_a_block_that_succeeds_leaves_nothing(tmp_path):
    journal = FailureJournal.begin(str(tmp_path / 'journal.json'))
    with journal.watch(OTHER):
        pass

    assert FailureJournal.begin(journal.path).quarantined(after=1) == {}


def test_the_test_hook_fails_only_its_record(tmp_path, monkeypatch):
    monkeypatch.setenv(TEST_HOOK_ENV, PILL.event_id)
    journal = FailureJournal.begin(str(tmp_path / 'journal.json'))

    with journal.watch(OTHER):
        pass
    with pytest.raises(InjectedFailure):
        with journal.watch(PILL):
            pass
    assert list(FailureJournal.begin(journal.path).quarantined(after=1)) == [PILL.event_id]
