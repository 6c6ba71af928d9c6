"""RunProgress: a drain is complete once every offset read is committed."""

from __future__ import annotations

from transforms.kafka.drain import RunProgress, progress

FOCUS_0, FOCUS_1 = ('store.focus', 0), ('store.focus', 1)


def test_nothing_read_is_nothing_in_flight():
    assert RunProgress().in_flight() == 0


def test_offsets_read_are_in_flight_until_committed():
    run = RunProgress()
    run.read(FOCUS_0, 10, 15)
    run.read(FOCUS_1, 0, 3)
    assert run.in_flight() == 8

    run.committed(FOCUS_0, 15)
    assert run.in_flight() == 3
    run.committed(FOCUS_1, 3)
    assert run.in_flight() == 0


def test_a_commit_never_moves_back():
    run = RunProgress()
    run.read(FOCUS_0, 10, 12)
    run.committed(FOCUS_0, 12)
    run.committed(FOCUS_0, 11)

    assert run.in_flight() == 0


def test_a_poll_that_read_nothing_leaves_nothing_in_flight():
    run = RunProgress()
    run.read(FOCUS_0, 10, 10)

    assert run.in_flight() == 0


def test_each_run_has_its_own_progress():
    progress('run-a').request()

    assert progress('run-a').draining
    assert not progress('run-b').draining
