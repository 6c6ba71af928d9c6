"""advance: the offset to commit moves only over records that have all ended."""

from __future__ import annotations

from transforms.domain import EndedOffsets
from transforms.kafka.offsets import advance


def ended(start: int, end: int = 0) -> EndedOffsets:
    return EndedOffsets('store.focus', 0, start, end or start + 1)


def run(start: int, *marks: EndedOffsets) -> tuple[list[int], dict[int, int]]:
    """The offset to commit after each mark, and what is left waiting."""
    ahead: dict[int, int] = {}
    seen, next_offset = [], start
    for mark in marks:
        next_offset = advance(next_offset, ahead, mark)
        seen.append(next_offset)
    return seen, ahead


def test_records_ending_in_order_move_the_offset_one_by_one():
    assert run(10, ended(10), ended(11), ended(12)) == ([11, 12, 13], {})


def test_a_record_ending_early_waits_for_those_before_it():
    assert run(10, ended(12), ended(11), ended(10)) == ([10, 10, 13], {})


def test_a_record_that_never_ends_holds_the_offset_back():
    seen, ahead = run(10, ended(10), ended(12), ended(13))

    assert seen == [11, 11, 11]
    assert ahead == {12: 13, 13: 14}


def test_a_gap_range_ends_all_its_offsets_at_once():
    assert run(10, ended(15), ended(10, 15)) == ([10, 16], {})


def test_overlapping_and_repeated_ends_are_harmless():
    assert run(10, ended(10), ended(10), ended(12, 15), ended(11, 13)) == ([11, 11, 11, 15], {})


def test_an_end_before_the_committed_offset_is_ignored():
    assert run(10, ended(3), ended(9)) == ([10, 10], {})
