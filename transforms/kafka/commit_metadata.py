"""What a commit of the consumer group says beyond its offset: the ranges that ended past it.

transforms.kafka.offsets commits a partition's frontier (every record before it has ended) with,
in the commit's metadata, the ranges that ended beyond it; after a crash the read
(transforms.kafka.python_io) skips those instead of processing them again. The text is
``ended-ahead:start-end,...`` (end exclusive), the first ranges only, within
``METADATA_MAX_CHARS``: a range left out is only processed again, never lost.
"""

from __future__ import annotations

from typing import Optional

Ahead = dict[int, int]  # start -> end of ended ranges beyond the next offset to commit
METADATA_MAX_CHARS = 3000  # below the broker's offset.metadata.max.bytes (4096 by default)
_ENDED_AHEAD = 'ended-ahead:'


def ended_ahead_metadata(ahead: Ahead) -> str:
    """The commit's metadata: the ranges ended beyond the committed offset, as
    ``ended-ahead:start-end,...``, as many of the first ones as fit METADATA_MAX_CHARS."""
    text = _ENDED_AHEAD
    for start, end in _merged(ahead):
        item = f'{start}-{end},'
        if len(text) + len(item) > METADATA_MAX_CHARS:
            break
        text += item
    return text.rstrip(',') if ahead else ''


def _merged(ahead: Ahead) -> list[tuple[int, int]]:
    """The ranges in order, adjacent and overlapping ones merged."""
    ranges: list[tuple[int, int]] = []
    for start in sorted(ahead):
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], ahead[start]))
        else:
            ranges.append((start, ahead[start]))
    return ranges


def ended_ahead_ranges(metadata: Optional[str]) -> list[tuple[int, int]]:
    """The ranges ``ended_ahead_metadata`` wrote; none for any other metadata."""
    if not metadata or not metadata.startswith(_ENDED_AHEAD):
        return []
    try:
        pairs = [item.split('-') for item in metadata[len(_ENDED_AHEAD) :].split(',') if item]
        return [(int(start), int(end)) for start, end in pairs]
    except ValueError:
        return []
