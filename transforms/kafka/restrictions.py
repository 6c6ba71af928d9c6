"""The restrictions of the read's unbounded splittable DoFns (the partition watcher's
partition numbers, a partition's offsets): a range [next, inf) that a runner may only
checkpoint (split at 0), never split by fraction (that would make a second reader of the same
topic or partition), and that a drain truncates to nothing. State: the tracker's range."""

from __future__ import annotations

from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.core import RestrictionProvider


class UnboundedRangeTracker(OffsetRestrictionTracker):
    """[start, inf): splits only to checkpoint, never by fraction."""

    def try_split(self, fraction_of_remainder: float):
        if fraction_of_remainder != 0:
            return None
        return super().try_split(0)

    def is_bounded(self) -> bool:
        return False


class UnboundedRestrictions(RestrictionProvider):
    """A restriction provider for [start, inf) ranges: one range per element, never split
    before processing, of no known size, dropped on drain. ``initial_restriction`` is the
    DoFn's own."""

    def create_tracker(self, restriction: OffsetRange) -> UnboundedRangeTracker:
        return UnboundedRangeTracker(restriction)

    def split(self, element, restriction):
        yield restriction

    def restriction_size(self, element, restriction) -> int:
        return 1  # the backlog is unknown here; no runner splits by it

    def truncate(self, element, restriction) -> None:
        return None  # on drain, stop
