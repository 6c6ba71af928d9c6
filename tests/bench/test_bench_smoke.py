"""A smoke run of the benchmark harness: one short point for the pipeline and both references.

Benchmarks are not tests and do not run in CI (``bench/run.sh``); this only shows that the
harness works end to end: its broker and stand-ins start, each system runs and is measured,
and the outputs are written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import run_benchmark
from bench.measure import Timing
from bench.plan import SYSTEMS, Plan

pytestmark = pytest.mark.integration
SMOKE = Plan(loads=(10,), duration_s=8, timing=Timing(warmup_s=1, drain_timeout_s=15))


def test_one_short_point_measures_every_system_and_writes_the_outputs(tmp_path: Path):
    results, report = run_benchmark(SMOKE, tmp_path / 'results')

    assert [p.system for p in results.sweep] == [s.name for s in SYSTEMS]
    for point in results.sweep:
        assert point.focus_events > 0 and point.throughput > 0, point
        assert 0 < point.p50_ms <= point.p95_ms <= point.p99_ms, point
        assert point.cpu_s > 0 and point.peak_rss_mib > 0, point
    pipeline, simple, _ = results.sweep
    assert pipeline.scorer_requests > 0 and simple.scorer_requests == simple.focus_events
    assert (tmp_path / 'results' / 'sweep.csv').exists()
    assert (tmp_path / 'results' / 'summary.json').exists()
    assert '## Sweep' in report
