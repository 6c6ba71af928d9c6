"""Small builders of the pipeline's records, shared by the unit tests."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any, Optional

from transforms.domain import (
    PROFILE_FIELDS,
    Coupon,
    CouponPrediction,
    CustomerContext,
    EnrichedFocus,
    EntryEvent,
    FocusEvent,
    KafkaRecord,
    ScoredFocus,
    SourcePosition,
)

ENTRY_TOPIC = 'store.entry'
FOCUS_TOPIC = 'store.focus'
SEED_TIMESTAMP = '2001-12-17T09:30:47.0'


def epoch_s(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> float:
    """Seconds since the epoch of a UTC wall-clock time, computed with datetime."""
    return datetime(
        year, month, day, hour, minute, second, microsecond, tzinfo=timezone.utc
    ).timestamp()


def iso(time_s: float) -> str:
    """The seed's zone-less timestamp form of ``time_s`` (UTC)."""
    return datetime.fromtimestamp(time_s, timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')


# --- JSON messages and Kafka records -----------------------------------------------------


def entry_message(
    customer_id: Any = 1, timestamp: str = SEED_TIMESTAMP, **overrides: Any
) -> dict[str, Any]:
    return {
        'event_type': 'customer entry',
        'event_timestamp': timestamp,
        'payload': {'customer_id': customer_id},
        **overrides,
    }


def focus_message(
    customer_id: Any = 1, department_id: Any = 2, timestamp: str = SEED_TIMESTAMP, **overrides: Any
) -> dict[str, Any]:
    return {
        'event_type': 'customer focus',
        'event_timestamp': timestamp,
        'payload': {'customer_id': customer_id, 'department_id': department_id},
        **overrides,
    }


def to_bytes(message: Any) -> bytes:
    return json.dumps(message).encode('utf-8')


def record(
    value: Optional[bytes], topic: str = ENTRY_TOPIC, partition: int = 0, offset: int = 0
) -> KafkaRecord:
    return KafkaRecord(
        topic=topic, partition=partition, offset=offset, key=None, value=value, timestamp_ms=0
    )


def entry_record(message: Any = None, **position: Any) -> KafkaRecord:
    """A record on the entry topic; ``message`` defaults to a valid entry."""
    return record(
        to_bytes(entry_message() if message is None else message),
        **{'topic': ENTRY_TOPIC, **position},
    )


def focus_record(message: Any = None, **position: Any) -> KafkaRecord:
    """A record on the focus topic; ``message`` defaults to a valid focus."""
    return record(
        to_bytes(focus_message() if message is None else message),
        **{'topic': FOCUS_TOPIC, **position},
    )


# --- Domain records ----------------------------------------------------------------------


def position(offset: int, topic: str = FOCUS_TOPIC, partition: int = 0) -> SourcePosition:
    return SourcePosition(topic, partition, offset)


def entry(customer_id: int, time_s: float, offset: int = 0) -> EntryEvent:
    return EntryEvent(customer_id, iso(time_s), time_s, position(offset, ENTRY_TOPIC))


def focus(customer_id: int, time_s: float, offset: int = 0, department_id: int = 1) -> FocusEvent:
    return FocusEvent(
        customer_id,
        department_id,
        iso(time_s),
        time_s,
        position(offset, FOCUS_TOPIC),
        read_at_s=0.0,
    )


def profile(**values: Any) -> dict[str, Any]:
    """A full profile: every PROFILE_FIELDS entry, numbered, unless given."""
    return {name: values.get(name, index) for index, name in enumerate(PROFILE_FIELDS)}


def context(customer_id: int, **values: Any) -> CustomerContext:
    return CustomerContext.from_profile(customer_id, profile(**values))


def coupon(
    coupon_id: int, department_id: int = 1, discount: float = 0.1, price: float = 10.0
) -> Coupon:
    return Coupon(coupon_id, department_id, discount, price)


def enriched(focus_event: FocusEvent, customer: CustomerContext, *coupons: Coupon) -> EnrichedFocus:
    return EnrichedFocus(focus_event, customer, tuple(coupons))


def predictions(*pairs: tuple[int, float]) -> tuple[CouponPrediction, ...]:
    """Coupon predictions from (coupon_id, prediction) pairs."""
    return tuple(CouponPrediction(coupon_id, p) for coupon_id, p in pairs)


def scored(focus_event: FocusEvent, *pairs: tuple[int, float]) -> ScoredFocus:
    return ScoredFocus(focus_event, predictions(*pairs))


def ignoring_read_time(event: Any) -> Any:
    """The event with a fixed read time, so events compare whatever the wall clock was."""
    if isinstance(event, FocusEvent):
        return dataclasses.replace(event, read_at_s=0.0)
    return event
