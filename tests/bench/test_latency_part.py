"""The realistic-latency part's order and stop rule, and how its capacities are reported.

No broker or stand-ins: the slower stand-ins and the measurement of a point are replaced by
fakes in which each system keeps up to a fixed load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

import pytest

from bench import plan as plan_module
from bench.measure import Load, PointResult
from bench.plan import FULL, PIPELINE, Results, Saturation
from bench.report import _capacity, _latency_capacity_sentence
from bench.systems import QUIX, SIMPLE, System

KEEPS_UP_TO = {PIPELINE.name: 150.0, SIMPLE.name: 25.0, QUIX.name: 50.0}
TEMPLATE = PointResult(
    section='latency',
    system='',
    label='',
    scorer_latency_ms=20,
    load='',
    offered_rate=None,
    sent_rate=0.0,
    focus_events=100,
    with_output=80,
    without_output=20,
    missing_outputs=0,
    complete=True,
    window_s=10.0,
    drain_s=0.1,
    throughput=0.0,
    p50_ms=10.0,
    p95_ms=20.0,
    p99_ms=30.0,
    max_ms=40.0,
    latency_samples=100,
    outputs=200,
    dead_letters=0,
    scorer_requests=100,
    scorer_instances=3000,
    scorer_rejected=0,
    central_requests=20,
    cpu_s=1.0,
    machine_cpu_s=2.0,
    cpu_startup_s=1.0,
    peak_rss_mib=100.0,
    lag_end=0,
    central_latency_ms=5,
)


def fake_point(_rig: object, system: System, load: Load, section: str) -> PointResult:
    """A point that keeps up if the load is within the system's ``KEEPS_UP_TO``."""
    rate = load.rate or 0.0
    throughput = rate if rate <= KEEPS_UP_TO[system.name] else rate / 2
    return replace(
        TEMPLATE,
        section=section,
        system=system.name,
        label=system.label,
        load=load.label,
        offered_rate=rate,
        sent_rate=rate,
        throughput=throughput,
    )


@pytest.fixture
def same_rig(monkeypatch: pytest.MonkeyPatch) -> None:
    """``with_latency`` yields the rig it is given instead of starting slower stand-ins."""

    @contextlib.contextmanager
    def with_latency(rig: object, *_latencies: int) -> Iterator[object]:
        yield rig

    monkeypatch.setattr(plan_module, 'with_latency', with_latency)


@pytest.mark.usefixtures('same_rig')
def test_each_scoring_system_runs_until_its_first_missed_load_and_the_part_then_ends():
    points = list(plan_module._realistic_latency(FULL, None, fake_point, plan_module.SYSTEMS))

    measured = [(p.system, p.offered_rate) for p in points]
    assert measured == [
        ('pipeline', 25),
        ('simple', 25),
        ('quix', 25),
        ('pipeline', 50),
        ('simple', 50),
        ('quix', 50),
        ('pipeline', 100),
        ('quix', 100),
        ('pipeline', 150),
        ('pipeline', 200),
    ]
    capacities = Results(FULL, latency=points).latency_capacities
    assert [(c.system, c.highest_kept_up, c.first_missed) for c in capacities] == [
        ('pipeline', 150, 200),
        ('simple', 25, 50),
        ('quix', 50, 100),
    ]
    sentence = _latency_capacity_sentence(capacities)
    assert 'pipeline 150/s, simple 25/s, quix 50/s; pipeline ÷ simple 6.00' in sentence


def test_a_capacity_that_never_missed_is_a_lower_bound_and_one_that_always_missed_an_upper():
    assert _capacity(Saturation(300, None, 'pipeline')) == '≥ 300/s'
    assert _capacity(Saturation(None, 25, 'simple')) == '< 25/s'
