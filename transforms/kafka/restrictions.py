"""The restriction tracker of the read's unbounded splittable DoFns (the partition watcher's
partition numbers, a partition's offsets): a range [next, inf) that a runner may only
checkpoint (split at 0), never split by fraction (that would make a second reader of the same
topic or partition). State: the tracker's range."""

from __future__ import annotations

from apache_beam.io.restriction_trackers import OffsetRestrictionTracker


class UnboundedRangeTracker(OffsetRestrictionTracker):
    """[start, inf): splits only to checkpoint, never by fraction."""

    def try_split(self, fraction_of_remainder: float):
        if fraction_of_remainder != 0:
            return None
        return super().try_split(0)

    def is_bounded(self) -> bool:
        return False
