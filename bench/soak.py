"""The memory soak: the pipeline for an hour at a steady load of many distinct customers.

    .venv/bin/python -m bench.soak [--minutes 60] [--rate 50] [--customers 1000000] [--ttl-s 600]

(after ``bench/run.sh`` installed the bench's requirements). On the bench's broker and its own stand-ins
(the central with ``--customers`` customers), the pipeline runs with
``CONTEXT_TTL_SECONDS=--ttl-s`` while the store traffic sends ``--rate`` focus events/s of
visits drawn from ``--customers`` customers, so nearly every customer is new and the sessions'
expiry (the TTL) is what keeps the state bounded. Every 30 s it samples the pipeline's
processes (resident memory now, CPU) and its metrics (sessions stored and expired, focus
events scored); the series goes to ``bench/results/soak-<timestamp>/series.csv`` and a
report to ``report.md`` there, copied to ``bench/results/soak-latest.md``.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from bench.procstat import group_usage
from bench.rig import LOCAL_DIR, RESULTS_DIR
from standins.kafka.broker import KafkaBroker, create_topics
from standins.services import LocalServices
from standins.store_traffic.producer import TrafficConfig, produce
from tests.integration.harness import pipeline_environment, read_metrics, running_pipeline

SAMPLE_EVERY_S = 30.0
SOAK_KAFKA_PORT = 19692  # apart from the tests' (19192, 19492) and the bench's (19292)
LATEST = RESULTS_DIR / 'soak-latest.md'


@dataclass(frozen=True)
class Sample:
    """The pipeline at one moment of the soak."""

    minute: float
    rss_mib: float  # all its processes, resident now
    python_rss_mib: float
    prism_rss_mib: float
    cpu_cores: float  # since the previous sample
    focus_scored: int
    sessions_stored: int
    sessions_expired: int


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM ends the soak as Ctrl-C does: what it started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    out_dir = RESULTS_DIR / time.strftime('soak-%Y%m%d-%H%M%S')
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
            duration_s=args.minutes * 60,
            customers=args.customers,
        )
        with running_pipeline(env, out_dir / 'pipeline.log') as process:
            series = _soak(process.pid, traffic, out_dir / 'metrics.json')
    _write(out_dir, args, series)
    print((out_dir / 'report.md').read_text())
    return 0


def _soak(leader: int, traffic: TrafficConfig, metrics_file: Path) -> list[Sample]:
    """Sends the traffic in a thread and samples the pipeline until it is all sent."""
    sender = threading.Thread(target=produce, args=(traffic,), daemon=True)
    started = time.monotonic()
    sender.start()
    series, last_cpu, last_at = [], group_usage(leader).cpu_s, started
    while sender.is_alive():
        sender.join(SAMPLE_EVERY_S)
        usage, now, metrics = group_usage(leader), time.monotonic(), read_metrics(metrics_file)
        by_name = {p.name: p.rss_kib / 1024 for p in usage.processes}
        series.append(
            Sample(
                minute=round((now - started) / 60, 2),
                rss_mib=round(sum(p.rss_kib for p in usage.processes) / 1024, 1),
                python_rss_mib=round(by_name.get('python', 0.0), 1),
                prism_rss_mib=round(by_name.get('prism', 0.0), 1),
                cpu_cores=round((usage.cpu_s - last_cpu) / (now - last_at), 3),
                focus_scored=int(metrics.get('selection.focus_with_coupons', 0))
                + int(metrics.get('selection.no_coupon_above_threshold', 0)),
                sessions_stored=int(metrics.get('sessions.contexts_stored', 0)),
                sessions_expired=int(metrics.get('sessions.sessions_expired', 0)),
            )
        )
        print(series[-1], flush=True)
        last_cpu, last_at = usage.cpu_s, now
    return series


def _write(out_dir: Path, args: argparse.Namespace, series: list[Sample]) -> None:
    with open(out_dir / 'series.csv', 'w', newline='') as out:
        writer = csv.DictWriter(out, fieldnames=list(asdict(series[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in series)
    rows = [
        '| minute | RSS MiB (all) | Python MiB | Prism MiB | CPU cores | focus scored | '
        'sessions stored | sessions expired |',
        '|---|---|---|---|---|---|---|---|',
        *(
            f'| {s.minute:g} | {s.rss_mib:g} | {s.python_rss_mib:g} | {s.prism_rss_mib:g} | '
            f'{s.cpu_cores:g} | {s.focus_scored} | {s.sessions_stored} | {s.sessions_expired} |'
            for s in series
        ),
    ]
    half = len(series) // 2
    later = [s.rss_mib for s in series[half:]]
    report = '\n\n'.join(
        [
            f'# Memory soak, {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}',
            f'{args.minutes:g} minutes at {args.rate:g} focus events/s, customers drawn from '
            f'{args.customers:,}, CONTEXT_TTL_SECONDS={args.ttl_s:g}; sampled every '
            f'{SAMPLE_EVERY_S:g} s (`python -m bench.soak`).',
            f'RSS of the pipeline\'s processes: first sample {series[0].rss_mib:g} MiB, '
            f'second half {min(later):g}-{max(later):g} MiB, last {series[-1].rss_mib:g} MiB.',
            '\n'.join(rows),
        ]
    )
    (out_dir / 'report.md').write_text(report + '\n')
    shutil.copyfile(out_dir / 'report.md', LATEST)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m bench.soak', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument('--minutes', type=float, default=60)
    parser.add_argument('--rate', type=float, default=50)
    parser.add_argument('--customers', type=int, default=1_000_000)
    parser.add_argument('--ttl-s', type=float, default=600)
    parser.add_argument('--kafka-port', type=int, default=SOAK_KAFKA_PORT)
    return parser


if __name__ == '__main__':
    raise SystemExit(main())
