"""The records that flow between the transforms of the coupon-scoring pipeline.

All are immutable. Each event keeps the Kafka position it was read from, so a
dead letter can point at it and a prediction can name its focus event.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

# The profile fields of a customer context, as the central serves them.
PROFILE_FIELDS = (
    'age_range',
    'marital_status',
    'family_size',
    'no_of_children',
    'income_bracket',
    'gender',
    'mean_discount_used',
    'unique_items_bought',
    'mean_selling_price_paid',
    'mean_quantity',
    'total_discount_used',
    'total_coupons_used',
    'total_price_paid',
    'total_quantity',
)


@dataclasses.dataclass(frozen=True)
class KafkaRecord:
    """One record as read from a topic-partition."""

    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def position(self) -> 'SourcePosition':
        return SourcePosition(self.topic, self.partition, self.offset)


@dataclasses.dataclass(frozen=True)
class SourcePosition:
    """Where a record was read: the identity of an event."""

    topic: str
    partition: int
    offset: int

    @property
    def event_id(self) -> str:
        return f'{self.topic}/{self.partition}/{self.offset}'


@dataclasses.dataclass(frozen=True)
class EndedOffsets:
    """Offsets [start, end) of a topic-partition whose records have ended: each one's
    outcome (predictions, a dead letter, a stored context, nothing above the threshold)
    is done, or the offsets hold no record (a gap: compaction, transaction markers)."""

    topic: str
    partition: int
    start: int
    end: int

    @classmethod
    def of(cls, position: SourcePosition) -> 'EndedOffsets':
        return cls(position.topic, position.partition, position.offset, position.offset + 1)

    @property
    def topic_partition(self) -> str:
        return f'{self.topic}/{self.partition}'


@dataclasses.dataclass(frozen=True)
class UndecodableBatch:
    """Offsets [start, end) of a topic-partition that the Kafka client cannot decode (a
    compression codec it lacks, corrupt data, a CRC mismatch): skipped by the read, and
    dead-lettered as one ``undecodable_batch`` with ``error``."""

    topic: str
    partition: int
    start: int
    end: int
    error: str


@dataclasses.dataclass(frozen=True)
class EntryEvent:
    """A customer entered the store."""

    customer_id: int
    event_timestamp: str  # as received
    event_time_s: float  # seconds since the epoch, UTC
    source: SourcePosition


@dataclasses.dataclass(frozen=True)
class FocusEvent:
    """A customer stopped in a department."""

    customer_id: int
    department_id: int
    event_timestamp: str  # as received
    event_time_s: float  # seconds since the epoch, UTC
    source: SourcePosition
    read_at_s: float  # wall clock when the pipeline read it

    @property
    def focus_id(self) -> str:
        return self.source.event_id


@dataclasses.dataclass(frozen=True)
class CustomerContext:
    """What the central knows of a customer; ``known`` is False for a 404."""

    customer_id: int
    known: bool
    profile: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_profile(cls, customer_id: int, profile: Mapping[str, Any]) -> 'CustomerContext':
        return cls(customer_id, True, tuple((name, profile.get(name)) for name in PROFILE_FIELDS))

    @classmethod
    def unknown(cls, customer_id: int) -> 'CustomerContext':
        """The documented default: no profile; the scorer sees null features."""
        return cls(customer_id, False, tuple((name, None) for name in PROFILE_FIELDS))

    def as_dict(self) -> dict[str, Any]:
        return dict(self.profile)


@dataclasses.dataclass(frozen=True)
class Coupon:
    """A coupon of the catalogue."""

    coupon_id: int
    department_id: int
    mean_coupon_discount: float
    mean_item_price: float


@dataclasses.dataclass(frozen=True)
class EnrichedFocus:
    """A focus event with its customer's context and its department's coupons."""

    focus: FocusEvent
    context: CustomerContext
    coupons: tuple[Coupon, ...]


@dataclasses.dataclass(frozen=True)
class CouponPrediction:
    """How likely a customer is to use a coupon."""

    coupon_id: int
    prediction: float


@dataclasses.dataclass(frozen=True)
class ScoredFocus:
    """A focus event with a prediction for every candidate coupon."""

    focus: FocusEvent
    predictions: tuple[CouponPrediction, ...]


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """The Kafka messages (key, value) one input record ends as, written together;
    ``source``: that record (None: not from the input, nothing to commit)."""

    source: Optional[SourcePosition]
    messages: tuple[tuple[Optional[bytes], bytes], ...]


@dataclasses.dataclass(frozen=True)
class FailedWrite:
    """Messages the broker refused, or that could not be sent within the write timeout."""

    outgoing: Outgoing
    error: str


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """Input that could not be processed, with the reason and where it came from;
    ``source_end``: for a range of offsets (an undecodable batch), the offset after it."""

    reason: str
    detail: str
    source: Optional[SourcePosition]
    original: Optional[bytes]
    source_end: Optional[int] = None
