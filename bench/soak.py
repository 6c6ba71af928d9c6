"""The memory soak: the pipeline for an hour at a steady load of many distinct customers.

    .venv/bin/python -m bench.soak [--minutes 60] [--rate 50] [--customers 1000000] [--ttl-s 600]
        [--runner prism|flink] [--idle-every-s 300 --idle-s 60]

(after ``bench/run.sh`` installed the bench's requirements). On the bench's broker and its own stand-ins
(the central with ``--customers`` customers), the pipeline runs with
``CONTEXT_TTL_SECONDS=--ttl-s`` while the store traffic sends ``--rate`` focus events/s of
visits drawn from ``--customers`` customers, so nearly every customer is new and the sessions'
expiry (the TTL) is what keeps the state bounded. Every 30 s it samples the pipeline's
processes (resident memory now, CPU) and its metrics (sessions stored and expired, focus
events scored); the series goes to ``bench/results/soak-<timestamp>/series.csv`` and a
report to ``report.md`` there, copied to ``bench/results/soak-latest.md``.

``--runner flink`` runs it on a local Flink cluster of its own (standins.flink, REST port
18281; FLINK_JOB_SERVER_JAR must name the job server) at parallelism 2 with two Python
workers, and samples the TaskManager: its process group (the JVM and the Python workers it
started), its JVM heap as Flink's REST API reports it, and its live heap after a full GC
(``jcmd GC.run``, then ``GC.heap_info``). ``--idle-every-s``/``--idle-s`` pause the traffic
(the Flink leak of issue 10 grew while the topics were idle); the report goes to
``bench/results/soak-flink-latest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from bench.procstat import group_usage
from bench.rig import LOCAL_DIR, RESULTS_DIR
from standins.flink.cluster import FlinkCluster
from standins.kafka.broker import KafkaBroker, create_topics
from standins.services import LocalServices
from standins.store_traffic.producer import TrafficConfig, produce
from tests.integration.harness import pipeline_environment, read_metrics, running_pipeline

SAMPLE_EVERY_S = 30.0
SOAK_KAFKA_PORT = 19692  # apart from the tests' (19192, 19492) and the bench's (19292)
SOAK_FLINK_PORT = 18281  # apart from the Flink tests' (18181) and the demo's (8081)
MIB = 1 << 20


@dataclass(frozen=True)
class Sample:
    """The pipeline at one moment of the soak. On Flink the processes are the TaskManager's
    (its JVM and the Python workers it started); the heap figures are Flink's only."""

    minute: float
    rss_mib: float  # all its processes, resident now
    python_rss_mib: float
    runner_rss_mib: float  # Prism, or the TaskManager JVM
    cpu_cores: float  # since the previous sample
    focus_scored: int
    sessions_stored: int
    sessions_expired: int
    heap_used_mib: Optional[float] = None  # Flink REST: Status.JVM.Memory.Heap.Used
    live_heap_mib: Optional[float] = None  # after a full GC


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM ends the soak as Ctrl-C does: what it started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    out_dir = RESULTS_DIR / time.strftime(f'soak-{args.runner}-%Y%m%d-%H%M%S')
    out_dir.mkdir(parents=True)
    broker = KafkaBroker(
        port=args.kafka_port,
        data_dir=LOCAL_DIR / f'kafka-{args.kafka_port}',
        log_dir=LOCAL_DIR / 'logs',
    )
    local = LOCAL_DIR / f'services-soak-{args.customers}'
    with (
        broker,
        LocalServices(
            central_port=0, scorer_port=0, customers=args.customers, local_dir=local
        ) as services,
        runner(args.runner) as (runner_args, sampled),
    ):
        topics = {
            name: f'soak.{out_dir.name}.{name}'
            for name in ('entry', 'focus', 'predictions', 'deadletters')
        }
        create_topics(broker.bootstrap_servers, list(topics.values()), partitions=3)
        env = {
            **pipeline_environment(broker, services, topics, out_dir / 'metrics.json'),
            'CONTEXT_TTL_SECONDS': str(args.ttl_s),
            'METRICS_INTERVAL_SECONDS': '10',
        }
        traffic = TrafficConfig(
            bootstrap_servers=broker.bootstrap_servers,
            entry_topic=topics['entry'],
            focus_topic=topics['focus'],
            rate=args.rate,
            customers=args.customers,
        )
        with running_pipeline(env, out_dir / 'pipeline.log', runner_args) as process:
            sender = threading.Thread(
                target=_send, args=(traffic, args.minutes * 60, args.idle_every_s, args.idle_s)
            )
            series = _soak(sender, sampled or (lambda: process.pid), out_dir / 'metrics.json')
    _write(out_dir, args, series)
    print((out_dir / 'report.md').read_text())
    return 0


Sampled = Callable[[], int]  # the leader of the process group to sample


@contextlib.contextmanager
def runner(name: str) -> Iterator[tuple[tuple[str, ...], Optional[Sampled]]]:
    """The pipeline's runner flags, and (Flink) where its workers run: Prism's run in the
    pipeline's own process group; Flink's in the TaskManager's, on a cluster of the soak's own."""
    if name == 'prism':
        yield ('--runner=DirectRunner',), None
        return
    jar = os.environ.get('FLINK_JOB_SERVER_JAR')
    if not jar:
        raise SystemExit('--runner flink: set FLINK_JOB_SERVER_JAR to the Flink job server jar')
    with FlinkCluster(rest_port=SOAK_FLINK_PORT) as cluster:
        flags = (
            '--runner=FlinkRunner',
            f'--flink_master={cluster.flink_master}',
            f'--flink_job_server_jar={jar}',
            '--parallelism=2',
            '--sdk_worker_parallelism=2',
            f'--job_name=coupon-scoring-soak-{uuid.uuid4().hex[:8]}',
        )
        yield flags, lambda: next(iter(cluster.taskmanager_pids().values()))


def _send(traffic: TrafficConfig, total_s: float, idle_every_s: float, idle_s: float) -> None:
    """``total_s`` of traffic; every ``idle_every_s`` of it, ``idle_s`` without any (0: none)."""
    began, cycle = time.monotonic(), 0
    while (left := total_s - (time.monotonic() - began)) > 0:
        busy = min(left, idle_every_s) if idle_s else left
        produce(replace(traffic, duration_s=busy, seed=traffic.seed + cycle))
        cycle += 1
        if idle_s and total_s - (time.monotonic() - began) > 0:
            time.sleep(min(idle_s, total_s - (time.monotonic() - began)))


def _soak(sender: threading.Thread, leader: Sampled, metrics_file: Path) -> list[Sample]:
    """Sends the traffic in a thread and samples the pipeline until it is all sent."""
    started = time.monotonic()
    sender.start()
    series, last_cpu, last_at = [], group_usage(leader()).cpu_s, started
    while sender.is_alive():
        sender.join(SAMPLE_EVERY_S)
        pid = leader()
        usage, now, metrics = group_usage(pid), time.monotonic(), read_metrics(metrics_file)
        rss = {name: 0.0 for name in ('python', 'prism', 'java')}
        for process in usage.processes:
            rss[process.name] = rss.get(process.name, 0.0) + process.rss_kib / 1024
        series.append(
            Sample(
                minute=round((now - started) / 60, 2),
                rss_mib=round(sum(p.rss_kib for p in usage.processes) / 1024, 1),
                python_rss_mib=round(rss['python'], 1),
                runner_rss_mib=round(rss['prism'] + rss['java'], 1),
                cpu_cores=round((usage.cpu_s - last_cpu) / (now - last_at), 3),
                focus_scored=int(metrics.get('selection.focus_with_coupons', 0))
                + int(metrics.get('selection.no_coupon_above_threshold', 0)),
                sessions_stored=int(metrics.get('sessions.contexts_stored', 0)),
                sessions_expired=int(metrics.get('sessions.sessions_expired', 0)),
                **(_jvm_heap(pid) if rss['java'] else {}),
            )
        )
        print(series[-1], flush=True)
        last_cpu, last_at = usage.cpu_s, now
    return series


def _jvm_heap(pid: int) -> dict[str, float]:
    """The TaskManager's heap as Flink's REST API reports it, then its live heap after a full GC."""
    cluster = FlinkCluster(rest_port=SOAK_FLINK_PORT)
    (taskmanager,) = cluster.taskmanager_ids()
    used = cluster.heap_used(taskmanager)
    subprocess.run(['jcmd', str(pid), 'GC.run'], capture_output=True, check=True, timeout=60)
    info = subprocess.run(
        ['jcmd', str(pid), 'GC.heap_info'], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    live_kib = int(re.search(r'used (\d+)K', info).group(1))
    return {
        'heap_used_mib': round(used / MIB, 1) if used is not None else None,
        'live_heap_mib': round(live_kib / 1024, 1),
    }


def _write(out_dir: Path, args: argparse.Namespace, series: list[Sample]) -> None:
    with open(out_dir / 'series.csv', 'w', newline='') as out:
        writer = csv.DictWriter(out, fieldnames=list(asdict(series[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in series)
    runner_name = 'Prism' if args.runner == 'prism' else 'TaskManager JVM'
    rows = [
        f'| minute | RSS MiB (all) | Python MiB | {runner_name} MiB | CPU cores | focus scored | '
        'sessions stored | sessions expired | heap used MiB (REST) | live heap MiB (after GC) |',
        '|---|---|---|---|---|---|---|---|---|---|',
        *(
            f'| {s.minute:g} | {s.rss_mib:g} | {s.python_rss_mib:g} | {s.runner_rss_mib:g} | '
            f'{s.cpu_cores:g} | {s.focus_scored} | {s.sessions_stored} | {s.sessions_expired} | '
            f'{_shown(s.heap_used_mib)} | {_shown(s.live_heap_mib)} |'
            for s in series
        ),
    ]
    half = len(series) // 2
    later = [s.rss_mib for s in series[half:]]
    idle = f', {args.idle_s:g} s idle every {args.idle_every_s:g} s' if args.idle_s else ''
    report = '\n\n'.join(
        [
            f'# Memory soak on {args.runner}, {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}',
            f'{args.minutes:g} minutes at {args.rate:g} focus events/s{idle}, customers drawn '
            f'from {args.customers:,}, CONTEXT_TTL_SECONDS={args.ttl_s:g}; sampled every '
            f'{SAMPLE_EVERY_S:g} s (`python -m bench.soak --runner {args.runner}`).',
            f'RSS of the pipeline\'s processes: first sample {series[0].rss_mib:g} MiB, '
            f'second half {min(later):g}-{max(later):g} MiB, last {series[-1].rss_mib:g} MiB.',
            '\n'.join(rows),
        ]
    )
    (out_dir / 'report.md').write_text(report + '\n')
    latest = 'soak-latest.md' if args.runner == 'prism' else f'soak-{args.runner}-latest.md'
    shutil.copyfile(out_dir / 'report.md', RESULTS_DIR / latest)


def _shown(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:g}'


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m bench.soak', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument('--minutes', type=float, default=60)
    parser.add_argument('--rate', type=float, default=50)
    parser.add_argument('--customers', type=int, default=1_000_000)
    parser.add_argument('--ttl-s', type=float, default=600)
    parser.add_argument('--kafka-port', type=int, default=SOAK_KAFKA_PORT)
    parser.add_argument('--runner', choices=('prism', 'flink'), default='prism')
    parser.add_argument('--idle-every-s', type=float, default=300, help='traffic between pauses')
    parser.add_argument('--idle-s', type=float, default=0, help='length of each pause (0: none)')
    return parser


if __name__ == '__main__':
    raise SystemExit(main())
