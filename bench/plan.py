"""What a bench run measures, in which order, and what it found.

A run, on one broker and one pair of stand-ins, one system at a time:

0. the stand-ins alone: requests/s each answers (``bench.standin_capacity``), so that the
   report can show how near its capacity each point drove them;
1. the sweep: for each offered load, low to high, the pipeline, the simple reference, the
   Quix Streams reference and the passthrough, each on fresh topics with the same seeded
   traffic; it stops after the first load the pipeline does not keep up with (the
   saturation point);
2. the replay: a fixed scenario produced as fast as the broker takes it, per system (each
   system's capacity);
3. batching: the pipeline with each ``SCORER_MAX_ROWS`` at one load, for each scorer latency
   (the stand-in's ``--latency-ms``), with the simple reference beside it;
4. realistic latency: a second pair of stand-ins whose scorer waits 20 ms and whose central
   waits 5 ms per request; the scoring systems at rising loads, each until the first load it
   does not keep up with (its capacity is the highest it kept up with), until all have
   stopped or the loads run out;
5. a profile: the pipeline under py-spy (if installed) at the highest load it kept up with.

A run may measure other systems than ``SYSTEMS`` (``python -m bench --only``, e.g. the pipeline
and the floor, ``bench.floor``): the sweep, the replay and the burst measure those given, the
realistic-latency part those of them that score, and the batching part and the profile run
only if the pipeline is among them. ``sweep_only`` (``--loads``) is a plan of the sweep alone
at the loads given, every one of them measured.

``FLINK`` (``bench/run.sh --flink``) runs the sweep and the replay with the pipeline on a local
Flink cluster, with each Kafka connector, beside the pipeline on Prism and the simple and Quix
references.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Load, PointResult, Timing, measure
from bench.profiling import Profile, Profiled, py_spy, summarize
from bench.rig import Rig, with_latency
from bench.standin_capacity import StandinCapacity, measure_capacity
from bench.systems import FLOOR, PASSTHROUGH, QUIX, SIMPLE, Pipeline, System

PIPELINE = Pipeline()
BURST_VISITS = 150  # about 1,000 messages (entries, focus events, malformed ones)
SYSTEMS: tuple[System, ...] = (PIPELINE, SIMPLE, QUIX, PASSTHROUGH)
OPTIONAL_SYSTEMS: tuple[System, ...] = (FLOOR,)  # measured only when asked for (``--only``)
Say = Callable[[str], None]
_Point = Callable[[Rig, System, Load, str], PointResult]


@dataclass(frozen=True)
class Plan:
    """What one bench run measures; a None rate or visit count, or a False, skips that part."""

    loads: tuple[float, ...]
    duration_s: float
    timing: Timing
    replay_visits: int | None = None
    burst_visits: int | None = None
    batching_rate: float | None = None
    batching_max_rows: tuple[int, ...] = (50, 2000)
    batching_latencies_ms: tuple[int, ...] = (0,)
    latency_loads: tuple[float, ...] = ()
    latency_scorer_ms: int = 20
    latency_central_ms: int = 5
    standin_capacity: bool = False
    profile: bool = False
    # the sweep stops after the first load the pipeline does not keep up with
    stop_at_saturation: bool = True
    # the pipeline on a local Flink cluster too (``bench/run.sh --flink``)
    on_flink: bool = False


FULL = Plan(
    loads=(10, 25, 50, 75, 100, 150, 200, 300),
    duration_s=30,
    timing=Timing(warmup_s=5, drain_timeout_s=20),
    replay_visits=500,
    burst_visits=BURST_VISITS,
    batching_rate=50,
    batching_latencies_ms=(0, 20),
    latency_loads=(25, 50, 100, 150, 200, 300),
    standin_capacity=True,
    profile=True,
)
FLINK = Plan(
    loads=(10, 50, 100, 200),
    duration_s=30,
    timing=Timing(warmup_s=5, drain_timeout_s=20),
    replay_visits=500,
    on_flink=True,
)
QUICK = Plan(
    loads=(10, 50),
    duration_s=10,
    timing=Timing(warmup_s=2, drain_timeout_s=15),
    burst_visits=BURST_VISITS,
    batching_rate=50,
    standin_capacity=True,
)


def sweep_only(base: Plan, loads: Sequence[float], duration_s: float | None = None) -> Plan:
    """A plan of the sweep alone at ``loads`` (each measured, past the pipeline's saturation
    too), with ``base``'s timing and, unless given, its duration."""
    return Plan(
        loads=tuple(loads),
        duration_s=base.duration_s if duration_s is None else duration_s,
        timing=base.timing,
        stop_at_saturation=False,
        on_flink=base.on_flink,
    )


def with_duration(plan: Plan, duration_s: float | None) -> Plan:
    """``plan`` with every paced point lasting ``duration_s`` (None: unchanged)."""
    return plan if duration_s is None else dataclasses.replace(plan, duration_s=duration_s)


def select(systems: Sequence[System], names: Sequence[str]) -> tuple[System, ...]:
    """The systems named, in the order named; ValueError naming those unknown and the choices."""
    by_name = {system.name: system for system in systems}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(
            f'unknown system(s) {", ".join(unknown)}: choose among {", ".join(by_name)}'
        )
    return tuple(by_name[name] for name in dict.fromkeys(names))


def _has_pipeline(systems: Sequence[System]) -> bool:
    return any(system.name == PIPELINE.name for system in systems)


def sweep_goes_on(points: Sequence[PointResult]) -> bool:
    """Whether the sweep goes on after a load's ``points``: the pipeline kept up with it (without
    the pipeline in the run: some system did)."""
    deciding = [p for p in points if p.system == PIPELINE.name] or points
    return any(p.keeps_up for p in deciding)


@dataclass(frozen=True)
class Saturation:
    """Where a system stopped keeping up over a part's paced loads."""

    highest_kept_up: float | None
    first_missed: float | None
    system: str = PIPELINE.name

    @classmethod
    def of(cls, points: list[PointResult], system: str) -> Saturation:
        """``system``'s highest load kept up with and lowest load missed among ``points``."""
        mine = [p for p in points if p.system == system and p.offered_rate is not None]
        kept_up = [p.offered_rate for p in mine if p.keeps_up]
        missed = [p.offered_rate for p in mine if not p.keeps_up]
        return cls(max(kept_up, default=None), min(missed, default=None), system)

    def describe(self) -> str:
        name = f'The {self.system}'
        if self.first_missed is None and self.highest_kept_up is None:
            return f'{name} was not measured at a paced load.'
        if self.first_missed is None:
            return f'{name} kept up with every load (up to {self.highest_kept_up:g}/s).'
        if self.highest_kept_up is None:
            return f'{name} did not keep up even with the lowest load ({self.first_missed:g}/s).'
        return (
            f'{name} kept up with {self.highest_kept_up:g}/s and not with '
            f'{self.first_missed:g}/s: it saturates in between.'
        )


@dataclass
class Results:
    """Every point of a run, by part."""

    plan: Plan
    sweep: list[PointResult] = field(default_factory=list)
    replay: list[PointResult] = field(default_factory=list)
    burst: list[PointResult] = field(default_factory=list)
    batching: list[PointResult] = field(default_factory=list)
    latency: list[PointResult] = field(default_factory=list)
    profile_point: PointResult | None = None
    profile: Profile | None = None
    standins: StandinCapacity | None = None

    @property
    def points(self) -> list[PointResult]:
        return [
            *self.sweep,
            *self.replay,
            *self.burst,
            *self.batching,
            *self.latency,
            *filter(None, [self.profile_point]),
        ]

    @property
    def saturation(self) -> Saturation:
        """Where the pipeline saturates in the sweep."""
        return Saturation.of(self.sweep, PIPELINE.name)

    @property
    def latency_capacities(self) -> list[Saturation]:
        """Each system's capacity in the realistic-latency part (the highest load it kept up with)."""
        systems = dict.fromkeys(p.system for p in self.latency)
        return [Saturation.of(self.latency, system) for system in systems]


def run_plan(
    plan: Plan, rig: Rig, work_root: Path, say: Say, systems: tuple[System, ...] = SYSTEMS
) -> Results:
    """Measure every part of ``plan`` on ``rig`` with ``systems`` (the sweep, the replay, the
    burst and the realistic latency); ``say`` gets a line per point."""
    results = Results(plan)
    point = _measurer(plan.timing, work_root, say)
    if plan.standin_capacity:
        results.standins = measure_capacity(rig.services)
        say(describe_capacity(results.standins))
    for rate in plan.loads:
        load = Load.paced(rate, plan.duration_s)
        points = [point(rig, system, load, 'sweep') for system in systems]
        results.sweep += points
        if plan.stop_at_saturation and not sweep_goes_on(points):
            break
    if plan.replay_visits is not None:
        load = Load(plan.replay_visits)
        results.replay = [point(rig, system, load, 'replay') for system in systems]
    if plan.burst_visits is not None:
        load = Load(plan.burst_visits)
        results.burst = [point(rig, system, load, 'burst') for system in systems]
    if plan.batching_rate is not None and _has_pipeline(systems):
        load = Load.paced(plan.batching_rate, plan.duration_s)
        results.batching = list(_batching(plan, rig, load, point, systems))
    if plan.latency_loads:
        results.latency = list(_realistic_latency(plan, rig, point, systems))
    if plan.profile and _has_pipeline(systems) and py_spy() is not None:
        raw = work_root / 'profile.raw.txt'
        load = Load.paced(results.saturation.highest_kept_up or plan.loads[0], plan.duration_s)
        results.profile_point = point(rig, Profiled(PIPELINE, raw), load, 'profile')
        results.profile = summarize(raw) if raw.exists() else None  # py-spy's log says why not
    return results


def _batching(
    plan: Plan, rig: Rig, load: Load, point: _Point, measured: Sequence[System]
) -> Iterator[PointResult]:
    """The pipeline with each SCORER_MAX_ROWS, and the simple reference if it is among the
    ``measured``, per scorer latency."""
    systems = [
        *(Pipeline({'SCORER_MAX_ROWS': str(rows)}) for rows in plan.batching_max_rows),
        *(system for system in measured if system.name == SIMPLE.name),
    ]
    for latency_ms in plan.batching_latencies_ms:
        if latency_ms == rig.scorer_latency_ms:
            yield from (point(rig, system, load, 'batching') for system in systems)
            continue
        with with_latency(rig, latency_ms) as slower:
            yield from (point(slower, system, load, 'batching') for system in systems)


def _realistic_latency(
    plan: Plan, rig: Rig, point: _Point, systems: Sequence[System]
) -> Iterator[PointResult]:
    """The scoring ``systems`` against slower stand-ins at rising loads, each until it misses one."""
    running = [system for system in systems if system.scores]
    with with_latency(rig, plan.latency_scorer_ms, plan.latency_central_ms) as slower:
        for rate in plan.latency_loads:
            load = Load.paced(rate, plan.duration_s)
            for system in list(running):
                result = point(slower, system, load, 'latency')
                yield result
                if not result.keeps_up:
                    running.remove(system)
            if not running:
                return


def _measurer(timing: Timing, work_root: Path, say: Say) -> _Point:
    """``measure`` with the run's timing and directory, saying each result."""

    def point(rig: Rig, system: System, load: Load, section: str) -> PointResult:
        result = measure(rig, system, load, timing, section, work_root)
        say(describe(result))
        return result

    return point


def describe_capacity(capacity: StandinCapacity) -> str:
    """One line for the progress log: each stand-in measurement's requests/s."""
    return 'stand-ins alone: ' + ', '.join(
        f'{f.endpoint}{f" {f.rows} rows" if f.rows else ""} x{f.threads} {f.per_s:,.0f}/s'
        for f in capacity.figures
    )


def describe(point: PointResult) -> str:
    """One line for the progress log."""
    latency = (
        f'p50 {point.p50_ms:,.0f} p95 {point.p95_ms:,.0f} p99 {point.p99_ms:,.0f} ms'
        if point.p99_ms is not None
        else 'no latency samples'
    )
    scorer = f', +{point.scorer_latency_ms} ms scorer' if point.scorer_latency_ms else ''
    scorer += f', +{point.central_latency_ms} ms central' if point.central_latency_ms else ''
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
