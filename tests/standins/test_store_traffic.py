"""The store traffic generator: determinism, shares of faulty traffic, visit structure, encoding.

No Kafka: the stream is generated without producing, and the send loop runs against a fake producer.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

import pytest

from standins.store_traffic import (
    ABSURD_CUSTOMER_ID,
    ENTRY,
    ENTRY_EVENT_TYPE,
    FOCUS,
    FOCUS_EVENT_TYPE,
    MALFORMED_KINDS,
    MAX_FOCUS_PER_VISIT,
    StoreTraffic,
    TrafficConfig,
    TrafficEvent,
    TrafficSummary,
    encode,
    format_timestamp,
)
from standins.store_traffic.producer import _ErrorCounter, _send_all

VISITS = 5_000
CUSTOMERS = 10_000
MOMENT = datetime(2021, 3, 18, 8, 29, 2, 160_987, tzinfo=timezone.utc)


def stream(visits: int = VISITS, **settings: Any) -> list[TrafficEvent]:
    return list(StoreTraffic(**settings).events(visits))


def valid_focus(events: list[TrafficEvent]) -> list[TrafficEvent]:
    return [event for event in events if event.is_valid_focus]


def shares(events: list[TrafficEvent], customers: int = CUSTOMERS) -> dict[str, float]:
    """Faulty traffic per valid focus event, measured from the stream itself (not the flags)."""
    entered: set[int] = set()
    early = unknown = malformed = focus = 0
    for event in events:
        if event.malformed is not None:
            malformed += 1
        elif event.topic_kind == ENTRY:
            entered.add(event.visit)
        else:
            focus += 1
            early += event.visit not in entered
            unknown += event.customer_id > customers
    return {"early": early / focus, "unknown": unknown / focus, "malformed": malformed / focus}


@pytest.fixture(scope="module")
def default_stream() -> list[TrafficEvent]:
    return stream()


def test_same_seed_gives_the_same_stream() -> None:
    first, second = stream(500, seed=11), stream(500, seed=11)

    assert first == second
    assert [encode(event, MOMENT) for event in first] == [encode(event, MOMENT) for event in second]


def test_another_seed_gives_another_stream() -> None:
    assert stream(500, seed=11) != stream(500, seed=12)


def test_events_can_be_drawn_again_from_the_same_instance() -> None:
    traffic = StoreTraffic(seed=3)

    assert list(traffic.events(200)) == list(traffic.events(200))


def test_an_endless_stream_starts_like_a_finite_one() -> None:
    endless = StoreTraffic(seed=5).events()
    head = [next(endless) for _ in range(300)]

    # Until the finite stream stops opening visits, both draw the same numbers.
    assert head[:100] == stream(1_000, seed=5)[:100]


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_default_shares_are_close_to_the_configured_ones(seed: int) -> None:
    measured = shares(stream(seed=seed))

    assert 0.040 <= measured["early"] <= 0.060
    assert 0.012 <= measured["unknown"] <= 0.028
    assert 0.007 <= measured["malformed"] <= 0.013


def test_other_shares_are_honoured() -> None:
    events = stream(early_focus_share=0.2, unknown_customer_share=0.1, malformed_share=0.05)
    measured = shares(events)

    assert 0.18 <= measured["early"] <= 0.22
    assert 0.08 <= measured["unknown"] <= 0.12
    assert 0.045 <= measured["malformed"] <= 0.055


def test_zero_shares_give_clean_traffic() -> None:
    events = stream(1_000, early_focus_share=0, unknown_customer_share=0, malformed_share=0)

    assert shares(events) == {"early": 0.0, "unknown": 0.0, "malformed": 0.0}


def test_before_entry_flag_matches_the_order(default_stream: list[TrafficEvent]) -> None:
    entered: set[int] = set()
    for event in default_stream:
        if event.topic_kind == ENTRY and event.malformed is None:
            entered.add(event.visit)
        elif event.is_valid_focus:
            assert event.before_entry == (event.visit not in entered)


def test_every_visit_has_one_entry_and_one_to_ten_focus_events(
    default_stream: list[TrafficEvent],
) -> None:
    entries = Counter(
        event.visit for event in default_stream if event.topic_kind == ENTRY and not event.malformed
    )
    focus = Counter(event.visit for event in valid_focus(default_stream))

    assert set(entries) == set(range(VISITS))
    assert set(entries.values()) == {1}
    assert set(focus) == set(
        range(VISITS)
    )  # no focus event without an entry somewhere in the stream
    assert min(focus.values()) == 1
    assert max(focus.values()) == MAX_FOCUS_PER_VISIT


def test_a_visit_keeps_its_customer(default_stream: list[TrafficEvent]) -> None:
    customers: defaultdict[int, set[int]] = defaultdict(set)
    for event in default_stream:
        customers[event.visit].add(event.customer_id)
        if event.malformed is None:
            assert event.payload["customer_id"] == event.customer_id

    assert all(len(ids) == 1 for ids in customers.values())


def test_ids_are_in_range(default_stream: list[TrafficEvent]) -> None:
    focus = valid_focus(default_stream)

    assert {event.payload["department_id"] for event in focus} == {1, 2, 3, 4, 5}
    assert all(1 <= event.customer_id <= 2 * CUSTOMERS for event in default_stream)
    assert any(event.customer_id > CUSTOMERS for event in focus)


def test_visits_interleave(default_stream: list[TrafficEvent]) -> None:
    last_seen: dict[int, int] = {}
    overlapping = 0
    for position, event in enumerate(default_stream):
        if event.visit in last_seen and position - last_seen[event.visit] > 1:
            overlapping += 1
        last_seen[event.visit] = position

    assert overlapping > VISITS  # most visits are interrupted by others' events


def test_every_malformed_kind_appears_in_turn(default_stream: list[TrafficEvent]) -> None:
    kinds = [event.malformed for event in default_stream if event.malformed is not None]

    assert set(kinds) == set(MALFORMED_KINDS)
    assert kinds[: 2 * len(MALFORMED_KINDS)] == list(MALFORMED_KINDS) * 2
    assert all(event.topic_kind == FOCUS for event in default_stream if event.malformed is not None)


def test_valid_events_encode_as_the_stores_write_them() -> None:
    entry = TrafficEvent(ENTRY, 1, {"customer_id": 1}, visit=0)
    focus = TrafficEvent(FOCUS, 1, {"customer_id": 1, "department_id": 4}, visit=0)

    assert encode(entry, MOMENT) == (
        b"1",
        b'{"event_type": "customer entry", "event_timestamp": "2021-03-18T08:29:02.160Z", '
        b'"payload": {"customer_id": 1}}',
    )
    key, value = encode(focus, MOMENT)
    assert key == b"1"
    assert json.loads(value) == {
        "event_type": FOCUS_EVENT_TYPE,
        "event_timestamp": "2021-03-18T08:29:02.160Z",
        "payload": {"customer_id": 1, "department_id": 4},
    }


def test_timestamps_are_utc_milliseconds() -> None:
    assert format_timestamp(MOMENT) == "2021-03-18T08:29:02.160Z"
    assert (
        format_timestamp(datetime(2021, 3, 18, 8, 29, 2, tzinfo=timezone.utc))
        == "2021-03-18T08:29:02.000Z"
    )


def decode(value: bytes) -> Any:
    return json.loads(value.decode())


def test_each_malformed_kind_is_malformed_as_named() -> None:
    payload = {"customer_id": 42, "department_id": 3}
    encoded = {
        kind: encode(TrafficEvent(FOCUS, 42, payload, 0, malformed=kind), MOMENT)
        for kind in MALFORMED_KINDS
    }
    assert all(key == b"42" for key, _ in encoded.values())
    value = {kind: message for kind, (_, message) in encoded.items()}

    with pytest.raises(UnicodeDecodeError):
        value["not_utf8"].decode()
    with pytest.raises(json.JSONDecodeError):
        decode(value["not_json"])
    assert "payload" not in decode(value["missing_payload"])
    assert decode(value["unknown_event_type"])["event_type"] not in (
        ENTRY_EVENT_TYPE,
        FOCUS_EVENT_TYPE,
    )
    assert decode(value["entry_on_focus_topic"]) == {
        "event_type": ENTRY_EVENT_TYPE,
        "event_timestamp": "2021-03-18T08:29:02.160Z",
        "payload": {"customer_id": 42},
    }
    assert decode(value["customer_id_string"])["payload"] == {
        "customer_id": "42",
        "department_id": 3,
    }
    assert decode(value["absurd_customer_id"])["payload"]["customer_id"] == ABSURD_CUSTOMER_ID
    with pytest.raises(ValueError):
        datetime.fromisoformat(
            decode(value["bad_timestamp"])["event_timestamp"].replace("Z", "+00:00")
        )


@pytest.mark.parametrize(
    "settings",
    [
        {"customers": 0},
        {"departments": 0},
        {"concurrent_visits": 0},
        {"malformed_share": 1.5},
        {"early_focus_share": -0.1},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        StoreTraffic(**settings)


class FakeProducer:
    """Records what is sent, as (topic, key, value)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> FakeProducer:
        self.sent.append((topic, key, value))
        return self

    def add_errback(self, _callback: Any) -> None:
        pass


def send_all(
    config: TrafficConfig, stop: threading.Event | None = None
) -> tuple[FakeProducer, TrafficSummary, str, float]:
    """Run the send loop against a fake producer: (producer, summary, why it ended, seconds)."""
    producer, summary = FakeProducer(), TrafficSummary()
    topics = {ENTRY: config.entry_topic, FOCUS: config.focus_topic}
    began = time.monotonic()
    deadline = began + config.duration_s if config.duration_s is not None else float("inf")
    stop = stop or threading.Event()
    fake: Any = producer
    reason = _send_all(fake, topics, config, summary, _ErrorCounter(), began, deadline, stop)
    return producer, summary, reason, time.monotonic() - began


def test_send_loop_sends_the_whole_stream_to_the_right_topics() -> None:
    config = TrafficConfig(entry_topic="e", focus_topic="f", visits=300, as_fast_as_possible=True)
    events = list(config.traffic().events(300))

    producer, summary, reason, _ = send_all(config)

    assert reason == "visits"
    assert [(topic, key) for topic, key, _ in producer.sent] == [
        ("e" if event.topic_kind == ENTRY else "f", str(event.customer_id).encode())
        for event in events
    ]
    assert summary.visits == 300
    assert summary.entries == 300
    assert summary.focus_events == sum(event.is_valid_focus for event in events)
    assert summary.malformed == sum(event.malformed is not None for event in events)
    assert summary.messages == len(events)


def test_send_loop_paces_focus_events() -> None:
    config = TrafficConfig(visits=40, rate=1_000.0)
    focus_events = sum(event.is_valid_focus for event in config.traffic().events(40))

    _, summary, _, elapsed = send_all(config)

    assert summary.focus_events == focus_events
    assert elapsed >= (focus_events - 1) / config.rate


def test_send_loop_stops_at_the_deadline_or_on_request() -> None:
    _, summary, reason, elapsed = send_all(TrafficConfig(rate=100.0, duration_s=0.3))
    assert reason == "duration"
    assert elapsed < 1.0
    assert 20 <= summary.focus_events <= 32

    stop = threading.Event()
    stop.set()
    producer, _, reason, _ = send_all(TrafficConfig(rate=100.0), stop)
    assert reason == "signal"
    assert producer.sent == []
