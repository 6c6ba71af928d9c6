"""The ended ledger's pure parts: what its view says has ended, and a restored frontier joined
with the ledger's last commit."""

from __future__ import annotations

from kafka.structs import OffsetAndMetadata

from transforms.kafka.ledger import LedgerView
from transforms.kafka.offsets import joined_with_commit


def test_the_view_holds_what_is_below_the_offset_and_in_the_ranges():
    view = LedgerView.of(OffsetAndMetadata(10, 'ended-ahead:12-14,20-21', -1))

    assert [o for o in range(25) if view.ended(o)] == [*range(10), 12, 13, 20]


def test_without_a_commit_nothing_has_ended():
    assert not any(LedgerView.of(None).ended(o) for o in range(5))


def test_metadata_of_another_kind_adds_no_range():
    view = LedgerView.of(OffsetAndMetadata(3, 'written by an operator', -1))

    assert [o for o in range(6) if view.ended(o)] == [0, 1, 2]


def test_a_restored_frontier_behind_the_commit_takes_the_commit_and_its_ranges():
    ahead = {11: 12}

    joined = joined_with_commit(8, ahead, OffsetAndMetadata(10, 'ended-ahead:15-17', -1), 0)

    assert joined == 10
    assert ahead == {11: 12, 15: 17}


def test_a_frontier_ahead_of_the_commit_keeps_its_place():
    assert joined_with_commit(30, {}, OffsetAndMetadata(10, '', -1), 0) == 30


def test_a_first_mark_starts_at_the_commit_else_at_itself():
    assert joined_with_commit(None, {}, OffsetAndMetadata(10, '', -1), 12) == 10
    assert joined_with_commit(None, {}, None, 12) == 12
