"""A smoke run of the benchmark harness: one short point for the pipeline and every reference.

Benchmarks are not tests and do not run in CI (``bench/run.sh``); this only shows that the
harness works end to end: its broker and stand-ins start, each system runs and is measured,
and the outputs are written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from bench.__main__ import run_benchmark
from bench.measure import Timing
from bench.plan import SYSTEMS, Plan
from bench.standin_capacity import CONTEXT, COUPONS, SCORER, SCORER_ROWS, measure_capacity
from standins.services import LocalServices

pytestmark = pytest.mark.integration
SMOKE = Plan(loads=(10,), duration_s=8, timing=Timing(warmup_s=1, drain_timeout_s=15))


def test_one_short_point_measures_every_system_and_writes_the_outputs(tmp_path: Path):
    results, report = run_benchmark(SMOKE, tmp_path / 'results')

    assert [p.system for p in results.sweep] == [s.name for s in SYSTEMS]
    for point in results.sweep:
        assert point.focus_events > 0 and point.throughput > 0, point
        assert 0 < point.p50_ms <= point.p95_ms <= point.p99_ms, point
        assert point.cpu_s > 0 and point.peak_rss_mib > 0, point
    pipeline, simple, quix, _ = results.sweep
    assert pipeline.scorer_requests > 0 and simple.scorer_requests == simple.focus_events
    assert quix.scorer_requests == quix.focus_events and quix.with_output > 0, quix
    assert all(p.central_requests > 0 for p in (pipeline, simple, quix))
    assert (tmp_path / 'results' / 'sweep.csv').exists()
    assert (tmp_path / 'results' / 'summary.json').exists()
    assert '## Sweep' in report


def test_standin_capacity_measures_each_endpoint_and_the_central_latency_knob(tmp_path: Path):
    with LocalServices(
        central_port=0, scorer_port=0, customers=20, central_latency_ms=20, local_dir=tmp_path
    ) as services:
        capacity = measure_capacity(services, duration_s=0.3, threads=(1,))
        central_counts = requests.get(f'{services.central_url}/metrics', timeout=5).json()

    one_row, fifty_rows = (capacity.best(SCORER, rows) for rows in SCORER_ROWS)
    assert one_row > fifty_rows > 0
    assert fifty_rows <= capacity.scorer(10) <= one_row
    assert 0 < capacity.central < 1000 / 20  # one client, 20 ms a request
    assert capacity.best(COUPONS) > 0
    answered = sum(f.requests for f in capacity.figures if f.endpoint in (CONTEXT, COUPONS))
    assert central_counts['requests'] >= answered
