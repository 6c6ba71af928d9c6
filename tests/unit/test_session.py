"""CustomerSessions: focus events meet their customer's context, in event time.

A focus event is ready at once: with its customer's context from the session, else with
the context the session fetches from the central at once (a stub HTTP server here) and
keeps, else (the central down) with the default context, not kept.

TestStream drives the watermark; the legacy BundleBasedDirectRunner runs state and
event-time timers, in this process. Event times are whole seconds (except where the
test is about milliseconds) so that timer times are exact. A scenario that needs a
timer to fire moves the watermark past it explicitly: on the BundleBasedDirectRunner,
output of a timer fired only by the final jump of the watermark to +infinity arrives
late at assert_that's GroupByKey and is dropped.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterator, Optional, Union

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline, test_stream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from tests.unit.builders import context, entry, focus, profile
from tests.unit.stub_http import StubHttpServer
from transforms.central import CentralConfig
from transforms.domain import CustomerContext, EndedOffsets, FocusEvent
from transforms.session import CustomerSessions, SessionConfig

CONFIG = SessionConfig(ttl_s=100.0)
T = 1_000_000.0  # an event time; the scenarios count seconds from it
CUSTOMER = 7
CENTRAL_DOWN = 666  # the stub central answers 503 for this customer


# --- The central, stubbed ----------------------------------------------------------------


def central_profile(customer_id: int) -> dict[str, Any]:
    """What the stub central knows of a customer: distinct from any entry's context."""
    return profile(age_range='56-70', income_bracket=customer_id % 12 + 1)


def central_context(customer_id: int) -> CustomerContext:
    return CustomerContext.from_profile(customer_id, central_profile(customer_id))


class StubCentral(StubHttpServer):
    """Knows ``known`` customers, is down for CENTRAL_DOWN, 404 for everyone else."""

    def __init__(self, *known: int):
        super().__init__(self._answer)
        self._known = set(known)

    def _answer(self, method: str, path: str, body: Optional[Any]) -> tuple[int, Any]:
        customer_id = int(re.fullmatch(r'/customers/(\d+)/context', path).group(1))
        if customer_id == CENTRAL_DOWN:
            return 503, {'error': 'down'}
        if customer_id in self._known:
            return 200, central_profile(customer_id)
        return 404, {'error': 'unknown customer'}

    @property
    def asked_for(self) -> list[int]:
        """The customer ids whose context was asked for, in order."""
        return [int(path.split('/')[2]) for _, path, _ in self.requests]


@pytest.fixture
def central() -> Iterator[StubCentral]:
    with StubCentral(CUSTOMER, CUSTOMER + 1) as stub:
        yield stub


# --- Scenario runner ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Watermark:
    """A TestStream step: the input watermark moves to ``time_s``."""

    time_s: float


def arrives_entry(time_s: float, customer: CustomerContext, offset: int = 0):
    """An entry at ``time_s`` whose context has been fetched."""
    return entry(customer.customer_id, time_s, offset), customer


Step = Union[Watermark, FocusEvent, tuple]


def _event_time(event) -> float:
    return event.event_time_s if isinstance(event, FocusEvent) else event[0].event_time_s


def _test_stream(steps: list[Step]) -> test_stream.TestStream:
    stream = test_stream.TestStream().advance_watermark_to(T - 1)
    for step in steps:
        if isinstance(step, Watermark):
            stream.advance_watermark_to(step.time_s)
        else:
            stream.add_elements([TimestampedValue(step, _event_time(step))])
    return stream.advance_watermark_to_infinity()


def entries_ended(steps: list[Step]) -> list[EndedOffsets]:
    """Every entry of the steps ends in the session, its context stored."""
    return [EndedOffsets.of(step[0].source) for step in steps if isinstance(step, tuple)]


def run_sessions(central: StubCentral, steps: list[Step], ready: list) -> None:
    """Runs the steps through CustomerSessions and checks what leaves ready."""
    options = PipelineOptions(['--streaming', '--runner=BundleBasedDirectRunner'])
    with test_pipeline.TestPipeline(options=options) as p:
        events = p | _test_stream(steps)
        inputs = {
            'entries': events | 'Entries' >> beam.Filter(lambda e: not isinstance(e, FocusEvent)),
            'focuses': events | 'Focuses' >> beam.Filter(lambda e: isinstance(e, FocusEvent)),
        }
        sessions = inputs | CustomerSessions(
            CONFIG, CentralConfig(central.base_url, timeout_s=5.0, retries=0)
        )

        assert_that(sessions['ready'], equal_to(ready), label='ready')
        assert_that(
            sessions['entries_ended'], equal_to(entries_ended(steps)), label='entries_ended'
        )


# --- Scenarios ---------------------------------------------------------------------------


def test_focus_after_entry_is_ready_with_the_entry_context(central):
    customer = context(CUSTOMER, age_range='26-35')
    f = focus(CUSTOMER, T + 10)

    run_sessions(central, [arrives_entry(T, customer), Watermark(T + 1), f], ready=[(f, customer)])

    assert central.asked_for == []


def test_focus_before_entry_gets_the_context_from_the_central_at_once(central):
    f = focus(CUSTOMER, T)

    run_sessions(central, [f], ready=[(f, central_context(CUSTOMER))])

    assert central.asked_for == [CUSTOMER]


def test_entry_after_a_fetched_focus_replaces_the_context_for_later_focus(central):
    first, later = focus(CUSTOMER, T, offset=1), focus(CUSTOMER, T + 20, offset=2)
    from_entry = context(CUSTOMER, income_bracket=9)

    run_sessions(
        central,
        [first, Watermark(T + 1), arrives_entry(T + 2, from_entry), Watermark(T + 3), later],
        ready=[(first, central_context(CUSTOMER)), (later, from_entry)],
    )

    assert central.asked_for == [CUSTOMER]


def test_focus_of_customer_unknown_to_central_is_ready_with_unknown_context(central):
    stranger = 4242
    f = focus(stranger, T)

    run_sessions(central, [f], ready=[(f, CustomerContext.unknown(stranger))])


def test_failed_fetch_gives_the_focus_the_default_context(central):
    f = focus(CENTRAL_DOWN, T)

    run_sessions(central, [f], ready=[(f, CustomerContext.unknown(CENTRAL_DOWN))])


def test_default_context_is_not_kept_so_the_next_focus_asks_the_central_again(central):
    first, later = focus(CENTRAL_DOWN, T, offset=1), focus(CENTRAL_DOWN, T + 20, offset=2)
    default = CustomerContext.unknown(CENTRAL_DOWN)

    run_sessions(
        central, [first, Watermark(T + 1), later], ready=[(first, default), (later, default)]
    )

    assert central.asked_for == [CENTRAL_DOWN, CENTRAL_DOWN]


def test_context_fetched_for_a_focus_serves_later_focus_without_asking_again(central):
    first, later = focus(CUSTOMER, T, offset=1), focus(CUSTOMER, T + 20, offset=2)
    fetched = central_context(CUSTOMER)

    run_sessions(
        central, [first, Watermark(T + 1), later], ready=[(first, fetched), (later, fetched)]
    )

    assert central.asked_for == [CUSTOMER]


def test_focus_after_ttl_expiry_is_not_enriched_from_the_expired_context(central):
    expired = context(CUSTOMER, age_range='18-25')
    f = focus(CUSTOMER, CONFIG.expiry_s(T) + 50)

    run_sessions(
        central,
        [arrives_entry(T, expired), Watermark(CONFIG.expiry_s(T) + 1), f],
        ready=[(f, central_context(CUSTOMER))],
    )

    assert central.asked_for == [CUSTOMER]


def test_repeated_entry_gives_later_focus_the_newer_context(central):
    older, newer = context(CUSTOMER, income_bracket=3), context(CUSTOMER, income_bracket=9)
    f = focus(CUSTOMER, T + 20)

    run_sessions(
        central,
        [
            arrives_entry(T, older, offset=1),
            Watermark(T + 1),
            arrives_entry(T + 10, newer, offset=2),
            Watermark(T + 11),
            f,
        ],
        ready=[(f, newer)],
    )


def test_unknown_customer_focus_is_ready_with_unknown_context(central):
    unknown = CustomerContext.unknown(CUSTOMER)
    f = focus(CUSTOMER, T + 3)
    assert not unknown.known

    run_sessions(central, [arrives_entry(T, unknown), Watermark(T + 1), f], ready=[(f, unknown)])


def test_context_of_one_customer_is_not_given_to_another(central):
    other = focus(CUSTOMER + 1, T + 3)

    run_sessions(
        central,
        [arrives_entry(T, context(CUSTOMER)), Watermark(T + 1), other],
        ready=[(other, central_context(CUSTOMER + 1))],
    )

    assert central.asked_for == [CUSTOMER + 1]


def test_sessions_expire_on_a_one_minute_grid_at_least_the_ttl_after_the_newest_event():
    config = SessionConfig(ttl_s=100.0)

    assert config.expiry_s(1_000_000.0) == 1_000_140.0  # 1,000,100 rounded up to the minute
    assert config.expiry_s(1_000_040.0) == 1_000_140.0  # the same bundle of timers
    assert config.expiry_s(1_000_040.5) == 1_000_200.0
