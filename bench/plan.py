"""What a bench run measures, in which order, and what it found.

A run, on one broker and one pair of stand-ins, one system at a time:

1. the sweep: for each offered load, low to high, the pipeline, the simple reference and the
   passthrough, each on fresh topics with the same seeded traffic; it stops after the first
   load the pipeline does not keep up with (the saturation point);
2. the replay: a fixed scenario produced as fast as the broker takes it, per system (each
   system's capacity);
3. batching: the pipeline with each ``SCORER_MAX_ROWS`` at one load, for each scorer latency
   (the stand-in's ``--latency-ms``), with the simple reference beside it;
4. a profile: the pipeline under py-spy (if installed) at the highest load it kept up with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Load, PointResult, Timing, measure
from bench.profiling import Profile, Profiled, py_spy, summarize
from bench.rig import Rig, with_scorer_latency
from bench.systems import PASSTHROUGH, SIMPLE, Pipeline, System

PIPELINE = Pipeline()
SYSTEMS: tuple[System, ...] = (PIPELINE, SIMPLE, PASSTHROUGH)
Say = Callable[[str], None]
_Point = Callable[[Rig, System, Load, str], PointResult]


@dataclass(frozen=True)
class Plan:
    """What one bench run measures; a None rate or visit count, or a False, skips that part."""

    loads: tuple[float, ...]
    duration_s: float
    timing: Timing
    replay_visits: int | None = None
    batching_rate: float | None = None
    batching_max_rows: tuple[int, ...] = (50, 2000)
    batching_latencies_ms: tuple[int, ...] = (0,)
    profile: bool = False


FULL = Plan(
    loads=(10, 25, 50, 75, 100, 150, 200, 300),
    duration_s=30,
    timing=Timing(warmup_s=5, drain_timeout_s=20),
    replay_visits=500,
    batching_rate=50,
    batching_latencies_ms=(0, 20),
    profile=True,
)
QUICK = Plan(
    loads=(10, 50), duration_s=10, timing=Timing(warmup_s=2, drain_timeout_s=15), batching_rate=50
)


@dataclass(frozen=True)
class Saturation:
    """Where the pipeline stopped keeping up in the sweep."""

    highest_kept_up: float | None
    first_missed: float | None

    def describe(self) -> str:
        if self.first_missed is None:
            return f'The pipeline kept up with every load of the sweep (up to {self.highest_kept_up:g}/s).'
        if self.highest_kept_up is None:
            return (
                f'The pipeline did not keep up even with the lowest load ({self.first_missed:g}/s).'
            )
        return (
            f'The pipeline kept up with {self.highest_kept_up:g}/s and not with '
            f'{self.first_missed:g}/s: it saturates in between.'
        )


@dataclass
class Results:
    """Every point of a run, by part."""

    plan: Plan
    sweep: list[PointResult] = field(default_factory=list)
    replay: list[PointResult] = field(default_factory=list)
    batching: list[PointResult] = field(default_factory=list)
    profile_point: PointResult | None = None
    profile: Profile | None = None

    @property
    def points(self) -> list[PointResult]:
        return [*self.sweep, *self.replay, *self.batching, *filter(None, [self.profile_point])]

    @property
    def saturation(self) -> Saturation:
        pipeline = [p for p in self.sweep if p.system == PIPELINE.name]
        kept_up = [p.offered_rate for p in pipeline if p.keeps_up]
        missed = [p.offered_rate for p in pipeline if not p.keeps_up]
        return Saturation(max(kept_up, default=None), min(missed, default=None))


def run_plan(plan: Plan, rig: Rig, work_root: Path, say: Say) -> Results:
    """Measure every part of ``plan`` on ``rig``; ``say`` gets a line per point."""
    results = Results(plan)
    point = _measurer(plan.timing, work_root, say)
    for rate in plan.loads:
        load = Load.paced(rate, plan.duration_s)
        points = [point(rig, system, load, 'sweep') for system in SYSTEMS]
        results.sweep += points
        if not next(p for p in points if p.system == PIPELINE.name).keeps_up:
            break
    if plan.replay_visits is not None:
        load = Load(plan.replay_visits)
        results.replay = [point(rig, system, load, 'replay') for system in SYSTEMS]
    if plan.batching_rate is not None:
        load = Load.paced(plan.batching_rate, plan.duration_s)
        results.batching = list(_batching(plan, rig, load, point))
    if plan.profile and py_spy() is not None:
        raw = work_root / 'profile.raw.txt'
        load = Load.paced(results.saturation.highest_kept_up or plan.loads[0], plan.duration_s)
        results.profile_point = point(rig, Profiled(PIPELINE, raw), load, 'profile')
        results.profile = summarize(raw) if raw.exists() else None  # py-spy's log says why not
    return results


def _batching(plan: Plan, rig: Rig, load: Load, point: _Point) -> Iterator[PointResult]:
    """The pipeline with each SCORER_MAX_ROWS, and the simple reference, per scorer latency."""
    systems = [
        *(Pipeline({'SCORER_MAX_ROWS': str(rows)}) for rows in plan.batching_max_rows),
        SIMPLE,
    ]
    for latency_ms in plan.batching_latencies_ms:
        if latency_ms == rig.scorer_latency_ms:
            yield from (point(rig, system, load, 'batching') for system in systems)
            continue
        with with_scorer_latency(rig, latency_ms) as slower:
            yield from (point(slower, system, load, 'batching') for system in systems)


def _measurer(timing: Timing, work_root: Path, say: Say) -> _Point:
    """``measure`` with the run's timing and directory, saying each result."""

    def point(rig: Rig, system: System, load: Load, section: str) -> PointResult:
        result = measure(rig, system, load, timing, section, work_root)
        say(describe(result))
        return result

    return point


def describe(point: PointResult) -> str:
    """One line for the progress log."""
    latency = (
        f'p50 {point.p50_ms:,.0f} p95 {point.p95_ms:,.0f} p99 {point.p99_ms:,.0f} ms'
        if point.p99_ms is not None
        else 'no latency samples'
    )
    scorer = f', +{point.scorer_latency_ms} ms scorer' if point.scorer_latency_ms else ''
    verdict = (
        ''
        if point.offered_rate is None
        else ', keeps up'
        if point.keeps_up
        else ', does NOT keep up'
    )
    return (
        f'{point.section:8} {point.load:>18} {point.label}{scorer}: {point.throughput:,.1f}/s '
        f'({point.processed}/{point.focus_events}), {latency}, cpu {point.cpu_s:.1f} s, '
        f'rss {point.peak_rss_mib:.0f} MiB, lag {point.lag_end}{verdict}'
    )
