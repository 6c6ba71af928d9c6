"""The outputs of a bench run: ``summary.json``, ``sweep.csv``, ``sweep.png`` and ``report.md``.

``sweep.csv`` has one row per point of every part (column ``section``: sweep, replay,
batching, latency, profile); the plot shows the sweep. The plot needs matplotlib
(``bench/requirements.txt``, installed by ``bench/run.sh``); without it the plot is skipped
and the report says so.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.measure import PointResult
from bench.plan import PIPELINE, Results, Saturation
from bench.profiling import Profile
from bench.standin_capacity import StandinCapacity
from bench.systems import FLOOR, PASSTHROUGH, QUIX, SIMPLE

# the floor last: the plot's colours of the others stay as they were
REFERENCES = (SIMPLE.name, QUIX.name, PASSTHROUGH.name, FLOOR.name)
SCORING_REFERENCES = (SIMPLE.name, QUIX.name)
CALLS_SCORER = (*SCORING_REFERENCES, FLOOR.name)  # their scorer requests are worth comparing
ON_PRISM = (PIPELINE.name, FLOOR.name)  # their CPU splits into Python and Prism
CSV_SKIPPED = {'processes'}
PLOT = 'sweep.png'
MISSING = '—'


@dataclass(frozen=True)
class RunInfo:
    """Where and when the run happened."""

    started: str
    finished: str
    commit: str
    machine: str
    load_average_start: str
    load_average_end: str
    versions: str


def write_outputs(results: Results, info: RunInfo, out_dir: Path) -> str:
    """Write the four files into ``out_dir``; return the report (it links the plot as ``sweep.png``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    points = results.points
    (out_dir / 'summary.json').write_text(json.dumps(_summary(results, info), indent=1))
    write_csv(points, out_dir / 'sweep.csv')
    plotted = write_plot(results.sweep, out_dir / PLOT)
    report = markdown(results, info, PLOT if plotted else None)
    (out_dir / 'report.md').write_text(report)
    return report


def write_csv(points: Sequence[PointResult], path: Path) -> None:
    """One row per point, every figure but the per-process breakdown."""
    rows = [{k: v for k, v in point.as_dict().items() if k not in CSV_SKIPPED} for point in points]
    with path.open('w', newline='') as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ['section'])
        writer.writeheader()
        writer.writerows(rows)


def write_plot(sweep: Sequence[PointResult], path: Path) -> bool:
    """Throughput and latency against offered load, per system; False if matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.8))
    rates = sorted({p.offered_rate for p in sweep if p.offered_rate is not None})
    left.plot(rates, rates, color='lightgrey', linestyle=':', label='offered')
    for system in (PIPELINE.name, *REFERENCES):
        mine = sorted((p for p in sweep if p.system == system), key=lambda p: p.offered_rate or 0)
        if not mine:  # not in this run: no empty line in the legend
            continue
        x = [p.offered_rate for p in mine]
        (line,) = left.plot(x, [p.throughput for p in mine], marker='o', label=system)
        for field, style in (('p50_ms', '-'), ('p99_ms', '--')):
            right.plot(
                x,
                [getattr(p, field) for p in mine],
                marker='o',
                linestyle=style,
                color=line.get_color(),
                label=f'{system} {field[:3]}',
            )
    left.set(xlabel='offered focus events/s', ylabel='processed focus events/s', title='Throughput')
    right.set(
        xlabel='offered focus events/s',
        ylabel='produce → first output (ms)',
        yscale='log',
        title='Latency (p50 solid, p99 dashed)',
    )
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return True


def ratios(points: Iterable[PointResult]) -> list[dict[str, object]]:
    """Per load: the pipeline's throughput and latencies divided by each reference's."""
    by_load: dict[str, dict[str, PointResult]] = {}
    for point in points:
        by_load.setdefault(point.load, {})[point.system] = point
    rows = []
    for load, systems in by_load.items():
        pipeline = systems.get(PIPELINE.name)
        for reference in (systems.get(name) for name in REFERENCES):
            if pipeline is not None and reference is not None:
                rows.append(
                    {
                        'load': load,
                        'reference': reference.system,
                        **{
                            f'{field}_ratio': _ratio(
                                getattr(pipeline, field), getattr(reference, field)
                            )
                            for field in ('throughput', 'p50_ms', 'p95_ms', 'p99_ms')
                        },
                    }
                )
    return rows


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator is not None and denominator else None


def _summary(results: Results, info: RunInfo) -> dict[str, object]:
    return {
        'run': asdict(info),
        'plan': asdict(results.plan),
        'saturation': {**asdict(results.saturation), 'description': results.saturation.describe()},
        'ratios': {
            'sweep': ratios(results.sweep),
            'replay': ratios(results.replay),
            'latency': ratios(results.latency),
        },
        'latency_capacities': [asdict(c) for c in results.latency_capacities],
        'latency_capacity_ratio_pipeline_simple': _capacity_ratio(results.latency_capacities),
        'standin_capacity': results.standins.as_dict() if results.standins else None,
        'standin_use': [
            {'section': p.section, 'load': p.load, 'label': p.label, **_standin_use(p, results)}
            for p in results.points
        ],
        'points': [point.as_dict() for point in results.points],
        'profile': results.profile.as_dict() if results.profile else None,
    }


def markdown(results: Results, info: RunInfo, image: str | None) -> str:
    """The human report."""
    plan = results.plan
    parts = [
        f'# Benchmark of the coupon-scoring pipeline, {info.started}',
        f'Commit `{info.commit}`; {info.machine}; {info.versions}. Load average (1/5/15 min) '
        f'{info.load_average_start} at the start, {info.load_average_end} at the end '
        f'(finished {info.finished}). Sweep loads {", ".join(f"{r:g}" for r in plan.loads)} focus events/s, '
        f'about {plan.duration_s:g} s each, warm-up {plan.timing.warmup_s:g} s, drain timeout '
        f'{plan.timing.drain_timeout_s:g} s, traffic seed {plan.timing.seed}.',
        '## Summary',
        _headline(results),
        '## Sweep',
        _points_table(results.sweep),
        '### Pipeline ÷ reference (throughput below 1 and latency above 1: the pipeline is worse)',
        _ratios_table(ratios(results.sweep)),
    ]
    if image:
        parts.append(f'![throughput and latency against offered load]({image})')
    if results.replay:
        parts += [
            '## Replay: a fixed scenario as fast as the broker takes it (capacity)',
            _points_table(results.replay),
            _ratios_table(ratios(results.replay)),
        ]
    if results.burst:
        parts += [
            f'## Burst: {plan.burst_visits} visits produced at once (first output after the first '
            'message)',
            _burst_table(results.burst),
        ]
    if results.batching:
        parts += [
            f'## Batching at {plan.batching_rate:g} focus events/s',
            _points_table(results.batching),
        ]
    if results.latency:
        parts += [
            f'## Realistic latency: scorer +{plan.latency_scorer_ms} ms, central '
            f'+{plan.latency_central_ms} ms per request',
            _latency_text(results),
            _points_table(results.latency),
            _ratios_table(ratios(results.latency)),
        ]
    if results.standins is not None:
        parts += ['## The stand-ins: their capacity and what each point asked of them']
        parts += [_standins_text(results.standins), _standin_use_table(results)]
    parts += [
        '## The pipeline\'s CPU by process (Python: driver and SDK harness; Prism: the runner)',
        _cpu_by_process_table([p for p in results.points if p.system in ON_PRISM]),
    ]
    if results.profile is not None and results.profile_point is not None:
        parts += [
            '## Profile of the pipeline',
            _profile_text(results.profile, results.profile_point),
        ]
    parts += ['## How it was measured', HOW_MEASURED]
    return '\n\n'.join(parts) + '\n'


def _burst_table(points: list[PointResult]) -> str:
    """Per system: messages, the first output after the first focus event, the whole burst."""
    rows = [
        '| system | focus events | first output ms | p50 ms | p99 ms | max ms | throughput/s |',
        '|---|---|---|---|---|---|---|',
    ]
    rows += [
        f'| {p.label} | {p.focus_events} | {_num(p.first_output_ms, 0)} | {_num(p.p50_ms, 0)} | '
        f'{_num(p.p99_ms, 0)} | {_num(p.max_ms, 0)} | {_num(p.throughput)} |'
        for p in points
    ]
    return '\n'.join(rows)


def _headline(results: Results) -> str:
    """The main findings as bullets: saturation, latency, scorer use, cost, capacity, leftovers."""
    pipeline_sweep = [p for p in results.sweep if p.system == PIPELINE.name]
    by_load = ', '.join(
        f'{p.load} {_num(p.p50_ms, 0)}/{_num(p.p99_ms, 0)} ms' for p in pipeline_sweep
    )
    bullets = [results.saturation.describe(), f'Pipeline latency p50/p99 by load: {by_load}.']
    at = results.saturation.highest_kept_up
    compared = {p.system: p for p in results.sweep if p.offered_rate == at}
    if PIPELINE.name in compared:
        bullets += _comparison(compared)
    if results.replay:
        bullets.append(
            'Capacity (replay): '
            + ', '.join(f'{p.system} {_num(p.throughput)}/s' for p in results.replay)
            + '.'
        )
    if results.burst:
        bullets.append(
            'First output of a burst after its first message: '
            + ', '.join(f'{p.system} {_num(p.first_output_ms, 0)} ms' for p in results.burst)
            + '.'
        )
    points = results.points
    left = [
        f'{p.section} {p.load} {p.label}: {p.focus_events - p.processed} not processed, '
        f'{p.missing_outputs} outputs missing'
        for p in points
        if p.processed < p.focus_events or p.missing_outputs
    ]
    if results.latency:
        bullets.append(_latency_capacity_sentence(results.latency_capacities))
    if results.standins is not None:
        bullets.append(_standin_headline(results))
    bullets.append('Left behind when the drain ended: ' + ('; '.join(left) or 'nothing') + '.')
    bullets.append(
        f'Lag at the end: {max((p.lag_end for p in points), default=0)} at most over '
        f'{len(points)} points.'
    )
    return '\n'.join(f'- {bullet}' for bullet in bullets)


def _comparison(at_load: dict[str, PointResult]) -> list[str]:
    """Latency, scorer use and cost of the pipeline and the references at one load."""
    pipeline = at_load[PIPELINE.name]
    references = [p for name, p in at_load.items() if name != PIPELINE.name]
    latency = '; '.join(
        f'{p.system} p50 {_num(p.p50_ms, 0)} ms, p99 {_num(p.p99_ms, 0)} ms '
        f'(pipeline ×{_num(_ratio(pipeline.p50_ms, p.p50_ms))} at p50)'
        for p in references
    )
    scorer = ''.join(
        f'; {p.system} {_num(p.requests_per_focus, 3)} and {_num(p.rows_per_request)}'
        for p in references
        if p.system in CALLS_SCORER
    )
    cost = '; '.join(
        f'{p.system} {_num(p.cpu_ms_per_focus)} ms CPU per focus event ({_num(p.cpu_cores, 2)} '
        f'cores), peak RSS {_num(p.peak_rss_mib, 0)} MiB'
        for p in at_load.values()
    )
    return [
        f'At {pipeline.load}: pipeline latency p50 {_num(pipeline.p50_ms, 0)} ms, '
        f'p99 {_num(pipeline.p99_ms, 0)} ms; {latency}.',
        f'Scorer at {pipeline.load}: pipeline {_num(pipeline.requests_per_focus, 3)} requests per focus '
        f'event, {_num(pipeline.rows_per_request)} rows per request{scorer}.',
        f'Cost at {pipeline.load}: {cost}.',
    ]


POINT_COLUMNS = (
    'load',
    'system',
    'scorer +ms',
    'sent/s',
    'processed',
    'missing',
    'throughput/s',
    'p50 ms',
    'p95 ms',
    'p99 ms',
    'max ms',
    'drain s',
    'scorer req/focus',
    'rows/req',
    'CPU s',
    'CPU cores',
    'CPU ms/focus',
    'machine cores',
    'peak RSS MiB',
    'lag',
    'keeps up',
)


def _points_table(points: Sequence[PointResult]) -> str:
    rows = [
        [
            p.load,
            p.label,
            str(p.scorer_latency_ms),
            _num(p.sent_rate),
            f'{p.processed}/{p.focus_events}',
            str(p.missing_outputs),
            _num(p.throughput),
            _num(p.p50_ms, 0),
            _num(p.p95_ms, 0),
            _num(p.p99_ms, 0),
            _num(p.max_ms, 0),
            _num(p.drain_s),
            _num(p.requests_per_focus, 3),
            _num(p.rows_per_request),
            _num(p.cpu_s),
            _num(p.cpu_cores, 2),
            _num(p.cpu_ms_per_focus),
            _num(p.machine_cores, 2),
            _num(p.peak_rss_mib, 0),
            str(p.lag_end),
            MISSING if p.offered_rate is None else 'yes' if p.keeps_up else 'NO',
        ]
        for p in points
    ]
    return _table(POINT_COLUMNS, rows)


def _cpu_by_process_table(points: Sequence[PointResult]) -> str:
    rows = []
    for p in points:
        cpu = {str(process['name']): float(process['cpu_s']) for process in p.processes}
        rows.append(
            [
                p.section,
                p.load,
                p.label,
                str(p.scorer_latency_ms),
                _num(cpu.get('python')),
                _num(cpu.get('prism')),
                _percent(_ratio(cpu.get('prism'), p.cpu_s)),
            ]
        )
    return _table(
        ('part', 'load', 'system', 'scorer +ms', 'python CPU s', 'prism CPU s', 'prism share'), rows
    )


def _ratios_table(rows: Sequence[dict[str, object]]) -> str:
    headers = ('load', 'reference', 'throughput', 'p50', 'p95', 'p99')
    return _table(
        headers,
        [
            [
                str(r['load']),
                str(r['reference']),
                *(_num(r[f'{f}_ratio'], 2) for f in ('throughput', 'p50_ms', 'p95_ms', 'p99_ms')),
            ]
            for r in rows
        ],
    )


def _latency_capacity_sentence(capacities: Sequence[Saturation]) -> str:
    """Each system's capacity with slow stand-ins, and the pipeline's over the simple one's."""
    each = ', '.join(f'{c.system} {_capacity(c)}' for c in capacities)
    ratio = _capacity_ratio(capacities)
    return (
        f'Capacity with realistic stand-in latency (highest load kept up with): {each}; '
        f'pipeline ÷ simple {_num(ratio, 2)}.'
    )


def _capacity(saturation: Saturation) -> str:
    """``N/s``, ``≥ N/s`` if it never missed, ``< N/s`` if it missed the lowest load."""
    if saturation.highest_kept_up is None:
        return f'< {saturation.first_missed:g}/s'
    bound = '≥ ' if saturation.first_missed is None else ''
    return f'{bound}{saturation.highest_kept_up:g}/s'


def _capacity_ratio(capacities: Sequence[Saturation]) -> float | None:
    """The pipeline's capacity over the simple reference's (the highest loads each kept up with)."""
    by_system = {c.system: c.highest_kept_up for c in capacities}
    return _ratio(by_system.get(PIPELINE.name), by_system.get(SIMPLE.name))


def _latency_text(results: Results) -> str:
    plan = results.plan
    return (
        f'A second pair of stand-ins (scorer `--latency-ms {plan.latency_scorer_ms}`, central '
        f'`--latency-ms {plan.latency_central_ms}`); the scoring systems at '
        f'{", ".join(f"{r:g}" for r in plan.latency_loads)} focus events/s, each until the first '
        f'load it did not keep up with. ' + _latency_capacity_sentence(results.latency_capacities)
    )


def _standin_use(point: PointResult, results: Results) -> dict[str, float | None]:
    """What ``point`` asked of the stand-ins, per second and as a share of their capacity."""
    capacity = results.standins
    scorer_capacity = capacity.scorer(point.rows_per_request) if capacity else None
    central_capacity = capacity.central if capacity else None
    return {
        'scorer_requests_per_s': point.scorer_requests_per_s,
        'scorer_capacity_per_s': scorer_capacity,
        'scorer_share': _ratio(point.scorer_requests_per_s, scorer_capacity),
        'central_requests_per_s': point.central_requests_per_s,
        'central_capacity_per_s': central_capacity,
        'central_share': _ratio(point.central_requests_per_s, central_capacity),
    }


def _standin_headline(results: Results) -> str:
    uses = [_standin_use(p, results) for p in results.points]
    scorer = max((u['scorer_share'] or 0.0 for u in uses), default=0.0)
    central = max((u['central_share'] or 0.0 for u in uses), default=0.0)
    return (
        f'Stand-ins: at most {scorer:.0%} of the scorer\'s capacity and {central:.0%} of the '
        f'central\'s over all points (a stand-in near 100 % would be the bottleneck).'
    )


def _standins_text(capacity: StandinCapacity) -> str:
    rows = [
        [
            f.endpoint,
            str(f.rows) if f.rows else MISSING,
            str(f.threads),
            str(f.requests),
            _num(f.seconds),
            _num(f.per_s, 0),
        ]
        for f in capacity.figures
    ]
    table = _table(('endpoint', 'rows', 'client threads', 'requests', 's', 'requests/s'), rows)
    return (
        'Each stand-in alone, before the sweep, with 1 and 4 client threads in the bench '
        '(keep-alive sessions; the clients share the cores with the stand-in, so these are lower '
        'bounds):\n\n' + table + '\n\nPer point, the requests/s the system asked of each '
        'stand-in over its window, and that as a share of the stand-in\'s capacity ("stand-in at '
        'X % of its capacity"): the scorer\'s at the point\'s rows per request (time per request '
        'interpolated between 1 and 50 rows), the central\'s context route\'s. The capacity is '
        'that of the stand-ins without added latency: a stand-in\'s added latency is a wait in '
        'its own request thread, not work, so it lowers what one client gets, not what the '
        'stand-in can serve.'
    )


def _standin_use_table(results: Results) -> str:
    rows = []
    for p in results.points:
        use = _standin_use(p, results)
        rows.append(
            [
                p.section,
                p.load,
                p.label,
                f'{p.scorer_latency_ms}/{p.central_latency_ms}',
                _num(use['scorer_requests_per_s']),
                _num(p.rows_per_request),
                _percent(use['scorer_share']),
                _num(use['central_requests_per_s']),
                _percent(use['central_share']),
            ]
        )
    headers = (
        'part',
        'load',
        'system',
        'stand-ins +ms (scorer/central)',
        'scorer req/s',
        'rows/req',
        'scorer at % of capacity',
        'central req/s',
        'central at % of capacity',
    )
    return _table(headers, rows)


def _profile_text(profile: Profile, point: PointResult) -> str:
    processes = ', '.join(f"{p['name']} {p['cpu_s']} s" for p in point.processes)
    lines = [
        f'py-spy (`record --gil --format raw`, 50 Hz) on the pipeline\'s Python process at {point.load}: '
        f'{profile.samples} samples of the thread holding the GIL. CPU during the load by process '
        f'(from /proc; Prism is Go and not sampled): {processes}.',
        '### By area (the innermost frame in a library; generic standard library goes to its caller)',
        _shares_table('area', profile.areas),
        '### Functions by own samples',
        _shares_table('function', profile.own),
        '### The pipeline\'s functions, samples in them and below',
        _shares_table('function', profile.own_code),
    ]
    return '\n\n'.join(lines)


def _shares_table(what: str, shares: Sequence[tuple[str, float]]) -> str:
    return _table((what, 'share'), [[f'`{name}`', f'{share:.1%}'] for name, share in shares])


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def _num(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f'{value:,.{digits}f}'


def _percent(share: float | None) -> str:
    return MISSING if share is None else f'{share:.0%}'


HOW_MEASURED = '''\
Each point runs one system alone on fresh topics (3 partitions) with the same seeded store
traffic (`standins.store_traffic`: entries, focus events, 5 % before their entry, 2 % unknown
customers, 1 % malformed); the broker and the stand-ins are shared by all points.
Systems: **pipeline** is `python -m pipeline --runner=DirectRunner` (on Prism); **simple** is
a kafka-python loop doing the same work one message at a time (context fetched on entry and
kept in a dict, one scorer request per focus event with all the department's coupons, top 5
at or above 0.2, one message per coupon); **quix** is the same work with the same functions
as a Quix Streams application (the two input topics as concatenated dataframes, the contexts
in its RocksDB state keyed by the message key, the customer_id, one scorer request per focus
event, at-least-once with a checkpoint every second); **passthrough** forwards each focus
message unchanged (the ceiling of a kafka-python consume-and-produce); **floor** (only when
asked for: `--only`) is `python -m bench.floor`, a Beam job of the pipeline's shape without its
work on the same Prism (the same Kafka read and write and commits, a stateful step keyed by
customer with one state cell, one scorer request per bundle with one row per focus event, one
output per focus event): the runner's floor for that shape.

- *processed*: valid focus events whose first output arrived, plus those the system reports
  as legitimately producing none (no coupon at or above the threshold: the pipeline's
  `selection.no_coupon_above_threshold`, the simple and Quix references' own count), over
  those sent.
- *missing*: focus events whose output is due but never arrived, by the integration tests'
  independent model (`tests/integration/scenario.py`: the central's database and the
  scorer's weights) for the scoring systems, and every focus event for the passthrough.
- *throughput*: processed focus events over the window from the first focus event's produce
  time to its last first output (or the end of the load, if later).
- *latency*: from a focus event's Kafka CreateTime (set by the producer) to the wall clock at
  which the bench's own consumer received its first output, looked up by the output's
  `focus_event_id`; focus events of the warm-up are left out (a replay has no warm-up: its
  latencies are the time its backlog takes to drain).
- *drain*: after the load, until all are processed, the drain timeout, or 10 s without progress;
  *drain s* is from the end of the load to the last first output.
- *keeps up*: at least 99 % processed and throughput at least 90 % of the rate sent.
- *scorer req/focus*, *rows/req*: the scorer stand-in's `GET /metrics` before and after;
  *central req/s* likewise from the central's `GET /metrics`, over the window.
- *CPU s*: user + system CPU of the system's process group (`/proc/<pid>/stat`: the Python
  driver and its Prism child for the pipeline) from the start of the load to the end of the
  drain; *CPU cores* is that over the window; *machine cores* is the whole machine's busy CPU
  over the same time (the system, the broker, the bench's producer and consumer, the
  stand-ins, and anything else running: a high value against *CPU cores* means contention).
- *peak RSS*: the sum of the group's processes' VmHWM.
- *lag*: the input topics' end offsets minus the system's consumer group's committed offsets,
  after the drain (given up to 5 s for the last commits).
'''
