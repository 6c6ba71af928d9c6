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
from typing import Iterator

from standins.kafka.broker import KafkaBroker
from standins.services import LocalServices

REPO = Path(__file__).resolve().parents[2]


def pipeline_environment(kafka: KafkaBroker, services: LocalServices,
                         topics: dict[str, str], metrics_file: Path) -> dict[str, str]:
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
      'FOCUS_MAX_WAIT_SECONDS': '5',
      'METRICS_INTERVAL_SECONDS': '1',
      'METRICS_FILE': str(metrics_file),
  }


@contextlib.contextmanager
def running_pipeline(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
  """``python -m pipeline --runner=DirectRunner`` until the block ends, then Ctrl-C."""
  with open(log_path, 'w') as log:
    process = subprocess.Popen(
        [sys.executable, '-m', 'pipeline', '--runner=DirectRunner'], cwd=REPO, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
  try:
    wait_for_log(log_path, 'pipeline started', process)
    yield process
  finally:
    process.send_signal(signal.SIGINT)  # the pipeline cancels its job and stops Prism
    try:
      process.wait(timeout=60)
    except subprocess.TimeoutExpired:
      os.killpg(process.pid, signal.SIGKILL)
      process.wait()


def wait_for_log(log_path: Path, text: str, process: subprocess.Popen,
                 timeout_s: float = 120) -> None:
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if text in log_path.read_text():
      return
    if process.poll() is not None:
      raise AssertionError(f'pipeline exited ({process.returncode}):\n'
                           + log_path.read_text()[-4000:])
    time.sleep(0.5)
  raise AssertionError(f'no {text!r} in the pipeline log after {timeout_s} s')


def read_metrics(metrics_file: Path) -> dict:
  return json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
