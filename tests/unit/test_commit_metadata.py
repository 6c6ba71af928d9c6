"""The commit metadata: what ended beyond the committed offset, written and read back."""

from __future__ import annotations

from transforms.kafka.commit_metadata import (
    METADATA_MAX_CHARS,
    ended_ahead_metadata,
    ended_ahead_ranges,
)


def test_ranges_round_trip_with_adjacent_ones_merged():
    metadata = ended_ahead_metadata({12: 13, 13: 14, 20: 25, 14: 15})

    assert metadata == 'ended-ahead:12-15,20-25'
    assert ended_ahead_ranges(metadata) == [(12, 15), (20, 25)]


def test_nothing_ahead_is_empty_metadata():
    assert ended_ahead_metadata({}) == ''
    assert ended_ahead_ranges('') == []


def test_too_many_ranges_keep_the_first_within_the_limit():
    ahead = {offset: offset + 1 for offset in range(10_000, 40_000, 2)}

    metadata = ended_ahead_metadata(ahead)
    ranges = ended_ahead_ranges(metadata)

    assert len(metadata) <= METADATA_MAX_CHARS
    assert ranges[0] == (10_000, 10_001)
    assert ranges == [(start, start + 1) for start in range(10_000, 10_000 + 2 * len(ranges), 2)]


def test_other_or_malformed_metadata_skips_nothing():
    assert ended_ahead_ranges(None) == []
    assert ended_ahead_ranges('written by another tool') == []
    assert ended_ahead_ranges('ended-ahead:12-x') == []
