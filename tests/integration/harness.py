"""Running ``python -m pipeline --runner=DirectRunner`` as a user would, from tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

from standins.kafka.broker import KafkaBroker
from standins.services import LocalServices

REPO = Path(__file__).resolve().parents[2]
DIRECT_RUNNER = ('--runner=DirectRunner',)


def pipeline_environment(
    kafka: KafkaBroker, services: LocalServices, topics: dict[str, str], metrics_file: Path
) -> dict[str, str]:
    return {
        **os.environ,
        'BOOTSTRAP_SERVERS': kafka.bootstrap_servers,
        'GROUP_ID': f'coupon-scoring-{topics["entry"]}',
        'AUTO_OFFSET_RESET': 'earliest',
        'ENTRY_EVENT_TOPIC_NAME': topics['entry'],
        'FOCUS_EVENT_TOPIC_NAME': topics['focus'],
        'COUPON_PREDICTION_TOPIC_NAME': topics['predictions'],
        'DEAD_LETTER_TOPIC_NAME': topics['deadletters'],
        'CENTRAL_URL': services.central_url,
        'COUPON_SCORER_URL': services.scorer_url,
        'METRICS_INTERVAL_SECONDS': '1',
        'METRICS_FILE': str(metrics_file),
    }


def run_job_command(
    module: str, env: dict[str, str], *flags: str, timeout_s: float = 300
) -> subprocess.CompletedProcess:
    """``python -m <module> --runner=DirectRunner <flags>`` (a bounded job: replay, re-drive)
    until it exits, its output captured."""
    return subprocess.run(
        [sys.executable, '-m', module, *DIRECT_RUNNER, *flags],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def start_pipeline(
    env: dict[str, str],
    log_path: Path,
    ready: str = 'pipeline reading',
    runner_args: Sequence[str] = DIRECT_RUNNER,
    module: str = 'pipeline',
) -> subprocess.Popen:
    """Starts ``python -m pipeline --runner=DirectRunner`` (or with ``runner_args``; or another
    ``module`` that logs ``ready`` the same way, such as ``bench.floor``); returns once it logs
    ``ready``: by default once its read polls Kafka, never after a fixed time."""
    with open(log_path, 'a') as log:
        process = subprocess.Popen(
            [sys.executable, '-m', module, *runner_args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_log(log_path, ready, process)
    return process


def stop_pipeline(process: subprocess.Popen, how: signal.Signals = signal.SIGINT) -> None:
    """SIGINT or SIGTERM: the pipeline reports, cancels its job and stops Prism. SIGKILL: the
    whole process group (pipeline, Prism, SDK harness) dies at once, as in a crash."""
    if how == signal.SIGKILL:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return
    process.send_signal(how)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_pipeline(
    env: dict[str, str],
    log_path: Path,
    runner_args: Sequence[str] = DIRECT_RUNNER,
    module: str = 'pipeline',
) -> Iterator[subprocess.Popen]:
    """``python -m pipeline --runner=DirectRunner`` (or with ``runner_args``, or ``module``
    instead of ``pipeline``) until the block ends, then Ctrl-C."""
    process = start_pipeline(env, log_path, runner_args=runner_args, module=module)
    try:
        yield process
    finally:
        stop_pipeline(process)


def wait_for_log(
    log_path: Path,
    text: str,
    process: subprocess.Popen,
    timeout_s: float = 120,
    seen: Optional[int] = None,
) -> None:
    """Waits until the log has ``text`` once more than ``seen`` times (default: than when
    called; give it when the line may come before the call, as a standby's takeover may)."""
    seen = log_path.read_text().count(text) if seen is None else seen
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_path.read_text().count(text) > seen:
            return
        if process.poll() is not None:
            raise AssertionError(
                f'pipeline exited ({process.returncode}):\n' + log_path.read_text()[-4000:]
            )
        time.sleep(0.5)
    raise AssertionError(f'no {text!r} in the pipeline log after {timeout_s} s')


def read_metrics(metrics_file: Path) -> dict:
    return json.loads(metrics_file.read_text()) if metrics_file.exists() else {}


def wait_for_metric(metrics_file: Path, name: str, at_least: int, timeout_s: float = 120) -> None:
    """Waits until the pipeline's metrics file shows ``name`` >= ``at_least``."""
    deadline = time.monotonic() + timeout_s
    while read_metrics(metrics_file).get(name, 0) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(
                f'{name} < {at_least} after {timeout_s} s: {read_metrics(metrics_file)}'
            )
        time.sleep(0.5)
