"""The stream's wire format: a :class:`TrafficEvent` stamped with a time, as Kafka key and value.

Valid events become the stores' JSON messages; each of :data:`MALFORMED_KINDS` has its own
recipe for a broken message derived from a valid focus event (:data:`_MALFORMED_VALUES`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from standins.store_traffic.stream import ENTRY, MALFORMED_KINDS, TrafficEvent

ENTRY_EVENT_TYPE = "customer entry"
FOCUS_EVENT_TYPE = "customer focus"
ABSURD_CUSTOMER_ID = 10**15


def format_timestamp(moment: datetime) -> str:
    """``moment`` (aware) in UTC as the stores write it: ``2021-03-18T08:29:02.160Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def encode(event: TrafficEvent, moment: datetime) -> tuple[bytes, bytes]:
    """The Kafka key and value of ``event`` stamped with ``moment``."""
    key = str(event.customer_id).encode()
    timestamp = format_timestamp(moment)
    if event.malformed is not None:
        return key, _MALFORMED_VALUES[event.malformed](event, timestamp)
    event_type = ENTRY_EVENT_TYPE if event.topic_kind == ENTRY else FOCUS_EVENT_TYPE
    return key, _json(
        {"event_type": event_type, "event_timestamp": timestamp, "payload": event.payload}
    )


def _json(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _focus_message(event: TrafficEvent, timestamp: str, **changes: Any) -> bytes:
    """The focus message of ``event`` with some top-level fields or payload fields replaced."""
    message: dict[str, Any] = {"event_type": FOCUS_EVENT_TYPE, "event_timestamp": timestamp}
    payload = {**event.payload, **changes.pop("payload", {})}
    message.update(changes)
    message["payload"] = payload
    return _json(message)


_MALFORMED_VALUES: dict[str, Callable[[TrafficEvent, str], bytes]] = {
    # Valid JSON but for one byte that is no UTF-8 (a lone continuation byte in a string).
    "not_utf8": lambda event, ts: _focus_message(event, ts).replace(b'"payload"', b'"pay\x80load"'),
    # A message cut short.
    "not_json": lambda event, ts: _focus_message(event, ts)[:-7],
    "missing_payload": lambda event, ts: _json(
        {"event_type": FOCUS_EVENT_TYPE, "event_timestamp": ts}
    ),
    "unknown_event_type": lambda event, ts: _focus_message(event, ts, event_type="customer exit"),
    "entry_on_focus_topic": lambda event, ts: _json(
        {
            "event_type": ENTRY_EVENT_TYPE,
            "event_timestamp": ts,
            "payload": {"customer_id": event.customer_id},
        }
    ),
    "customer_id_string": lambda event, ts: _focus_message(
        event, ts, payload={"customer_id": str(event.customer_id)}
    ),
    "absurd_customer_id": lambda event, ts: _focus_message(
        event, ts, payload={"customer_id": ABSURD_CUSTOMER_ID}
    ),
    # ISO-8601 in shape, but 30 February, 25 o'clock.
    "bad_timestamp": lambda event, ts: _focus_message(
        event, ts, event_timestamp="2021-02-30T25:61:00.000Z"
    ),
}
assert set(_MALFORMED_VALUES) == set(MALFORMED_KINDS)
