"""python -m bench [--quick | --flink] [--only NAMES] [--loads RATES] [--seconds S] [--out DIR] [--kafka-port P]: run the benchmark, print the report.

``--flink`` adds the pipeline on a local Flink cluster of the bench's own (standins.flink, REST
port 18381; FLINK_JOB_SERVER_JAR must name Beam's Flink job server) to a shorter plan.

``--only``, ``--loads`` and ``--seconds`` make an A/B run of one command, e.g. the pipeline
against its runner's floor (``bench.floor``) over a sweep:
``bench/run.sh --only pipeline,floor --loads 10,50,100,200,300``. ``--only`` measures the systems
named (the plan's, and ``floor``), ``--loads`` runs the sweep alone at those focus events/s
(every load, past the pipeline's saturation too), ``--seconds`` sets each paced point's
duration. Such a run does not replace ``bench/results/latest.md``.

``bench/run.sh`` installs what is needed first and then runs this. The results go to
``bench/results/<timestamp>/`` (``--out`` to choose), and the report is also copied to
``bench/results/latest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path

from bench.plan import (
    FLINK,
    FULL,
    OPTIONAL_SYSTEMS,
    PIPELINE,
    QUICK,
    SYSTEMS,
    Plan,
    Results,
    run_plan,
    select,
    sweep_only,
    with_duration,
)
from bench.report import PLOT, RunInfo, write_outputs
from bench.rig import DEFAULT_KAFKA_PORT, RESULTS_DIR, running_rig
from bench.systems import QUIX, SIMPLE, FlinkPipeline, System
from standins.flink.cluster import FlinkCluster
from standins.services import REPO_ROOT

LATEST = RESULTS_DIR / 'latest.md'
LATEST_PLOT = RESULTS_DIR / 'latest-sweep.png'
BENCH_FLINK_PORT = 18381  # apart from the Flink tests' (18181), the soak's (18281), the demo's


def run_benchmark(
    plan: Plan,
    out_dir: Path,
    kafka_port: int = DEFAULT_KAFKA_PORT,
    only: tuple[str, ...] | None = None,
) -> tuple[Results, str]:
    """Run ``plan`` on the bench's own broker and stand-ins with its systems, or those named in
    ``only``; write the outputs; return them."""
    started, commit, load_start = _now(), _commit(), _load_average()
    with running_rig(kafka_port) as rig, systems_of(plan, only) as systems:
        results = run_plan(
            plan, rig, out_dir / 'runs', lambda line: print(line, flush=True), systems
        )
    at_end = _commit()
    if at_end != commit:  # the checkout changed under the run: its points ran different code
        commit += f', but {at_end} at the end'
    info = RunInfo(
        started=started,
        finished=_now(),
        commit=commit,
        machine=_machine(),
        load_average_start=load_start,
        load_average_end=_load_average(),
        versions=_versions(),
    )
    report = write_outputs(results, info, out_dir)
    if keeps_latest(plan, only, out_dir):  # the latest report and plot are the ones kept in git
        latest, latest_plot = _latest(plan)
        if (out_dir / PLOT).exists():
            shutil.copyfile(out_dir / PLOT, latest_plot)
        latest.write_text(report.replace(f']({PLOT})', f']({latest_plot.name})'))
    return results, report


def keeps_latest(plan: Plan, only: tuple[str, ...] | None, out_dir: Path) -> bool:
    """Whether the run's report becomes the latest of its kind: a standard plan with its own
    systems, written under ``bench/results/``."""
    return plan in (FULL, QUICK, FLINK) and only is None and out_dir.parent == RESULTS_DIR


def _latest(plan: Plan) -> tuple[Path, Path]:
    """Where the latest report and plot of ``plan``'s kind are kept."""
    if plan.on_flink:
        return RESULTS_DIR / 'latest-flink.md', RESULTS_DIR / 'latest-flink-sweep.png'
    return LATEST, LATEST_PLOT


@contextlib.contextmanager
def systems_of(plan: Plan, only: tuple[str, ...] | None = None) -> Iterator[tuple[System, ...]]:
    """The systems ``plan`` measures, or those of them and of ``OPTIONAL_SYSTEMS`` (the floor)
    named in ``only``, in that order. FLINK: the pipeline on Flink with its default Kafka I/O
    (KafkaIO's read as a native Flink source, the Python writer) and with KafkaIO's writer too
    (``KAFKA_IO=xlang``), its cluster running meanwhile; the pipeline on Prism; the simple and
    the Quix reference."""
    with _plan_systems(plan) as systems:
        if only is None:
            yield systems
            return
        try:
            yield select((*systems, *OPTIONAL_SYSTEMS), only)
        except ValueError as error:
            raise SystemExit(f'--only: {error}') from None


@contextlib.contextmanager
def _plan_systems(plan: Plan) -> Iterator[tuple[System, ...]]:
    """The systems ``plan`` measures by default (see ``systems_of``)."""
    if not plan.on_flink:
        yield SYSTEMS
        return
    jar = os.environ.get('FLINK_JOB_SERVER_JAR')
    if not jar:
        raise SystemExit('--flink: set FLINK_JOB_SERVER_JAR to the Flink job server jar')
    with FlinkCluster(rest_port=BENCH_FLINK_PORT) as cluster:
        on_flink = functools.partial(FlinkPipeline, cluster=cluster, job_server_jar=jar)
        yield (
            on_flink(),
            on_flink(settings={'KAFKA_IO': 'xlang'}, name='pipeline-flink-xlang'),
            PIPELINE,
            SIMPLE,
            QUIX,
        )


def _now() -> str:
    return time.strftime('%Y-%m-%d %H:%M:%S %Z')


def _load_average() -> str:
    return ' '.join(Path('/proc/loadavg').read_text().split()[:3])


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ['git', *args], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()

    dirty = ' (with uncommitted changes)' if git('status', '--porcelain') else ''
    return git('rev-parse', '--short', 'HEAD') + dirty


def _machine() -> str:
    model = next(
        (
            line.split(':', 1)[1].strip()
            for line in Path('/proc/cpuinfo').read_text().splitlines()
            if line.startswith('model name')
        ),
        platform.machine(),
    )
    memory_kib = int(Path('/proc/meminfo').read_text().split()[1])
    return f'{os.cpu_count()} cores ({model}), {memory_kib / 2**20:.0f} GiB'


def _versions() -> str:
    return (
        f'Python {platform.python_version()}, apache-beam {version("apache-beam")}, '
        f'kafka-python {version("kafka-python")}, quixstreams {version("quixstreams")}'
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m bench', description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--quick',
        action='store_true',
        help='a short run (stand-in capacity, 2 loads of 10 s, batching without scorer latency; ~5 min)',
    )
    parser.add_argument(
        '--flink',
        action='store_true',
        help='the pipeline on a local Flink cluster (each Kafka connector) beside Prism and the '
        'simple and Quix references: sweep, replay (~30 min; needs FLINK_JOB_SERVER_JAR)',
    )
    parser.add_argument(
        '--only',
        type=names,
        default=None,
        metavar='NAMES',
        help='measure only these systems, comma-separated, in this order: pipeline, simple, '
        'quix, passthrough, floor (the pipeline\'s shape without its work, bench.floor), or '
        'the --flink plan\'s',
    )
    parser.add_argument(
        '--loads',
        type=rates,
        default=None,
        metavar='RATES',
        help='run the sweep alone at these focus events/s, comma-separated (every one, past '
        'the pipeline\'s saturation too), with the timing of the plan (--quick\'s or the full one\'s)',
    )
    parser.add_argument(
        '--seconds',
        type=positive_seconds,
        default=None,
        metavar='S',
        help='how long each paced point lasts (default: the plan\'s, 30 s; 10 s with --quick)',
    )
    parser.add_argument(
        '--out',
        type=Path,
        default=None,
        help='results directory (default: bench/results/<timestamp>)',
    )
    parser.add_argument(
        '--kafka-port',
        type=int,
        default=DEFAULT_KAFKA_PORT,
        help=f'the bench broker\'s port, the controller\'s is the next one '
        f'(default: {DEFAULT_KAFKA_PORT})',
    )
    return parser


def names(text: str) -> tuple[str, ...]:
    """``--only``: the comma-separated system names (checked against the plan's systems later)."""
    chosen = tuple(name.strip() for name in text.split(',') if name.strip())
    if not chosen:
        raise argparse.ArgumentTypeError('name at least one system')
    return chosen


def rates(text: str) -> tuple[float, ...]:
    """``--loads``: comma-separated positive focus events/s, in the order given."""
    try:
        loads = tuple(float(rate) for rate in text.split(',') if rate.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f'not numbers: {text!r}') from None
    if not loads or not all(0 < rate < float('inf') for rate in loads):
        raise argparse.ArgumentTypeError(f'positive focus events/s expected: {text!r}')
    return loads


def positive_seconds(text: str) -> float:
    """``--seconds``: a positive duration."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}') from None
    if not 0 < seconds < float('inf'):
        raise argparse.ArgumentTypeError(f'a positive number of seconds expected: {text!r}')
    return seconds


def chosen_plan(args: argparse.Namespace) -> Plan:
    """The plan of the command line: FLINK, QUICK or FULL; with ``--loads`` its sweep alone at
    those loads; with ``--seconds`` each paced point that long."""
    plan = FLINK if args.flink else QUICK if args.quick else FULL
    if args.loads is not None:
        return sweep_only(plan, args.loads, args.seconds)
    return with_duration(plan, args.seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    args = _parser().parse_args(argv)
    # SIGTERM ends the run as Ctrl-C does: what it started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    logging.getLogger('kafka').setLevel(logging.CRITICAL)  # kafka-python's connection chatter
    out_dir = args.out or RESULTS_DIR / time.strftime('%Y%m%d-%H%M%S')
    if args.only and not args.flink:  # before the rig starts (the Flink plan's names come later)
        try:
            select((*SYSTEMS, *OPTIONAL_SYSTEMS), args.only)
        except ValueError as error:
            _parser().error(f'--only: {error}')
    plan = chosen_plan(args)
    _, report = run_benchmark(plan, out_dir, args.kafka_port, args.only)
    print(report)
    print(
        f'results in {out_dir}'
        + (
            f', report copied to {_latest(plan)[0]}'
            if keeps_latest(plan, args.only, out_dir)
            else ''
        )
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
