"""The operator's view against the running pipeline: Prometheus metrics and health."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import pipeline_environment, running_pipeline
from tests.integration.outcomes import (
    OUTPUT_TIMEOUT_S,
    expected_outcome,
    produce,
    read_all,
    wait_for_commits,
)
from tests.integration.scenario import IndependentModel, Scenario

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(url: str) -> dict[str, float]:
    """Every sample of the exposition by name and labels, e.g. 'x{topic=a,partition=0}'."""
    samples = {}
    for family in text_string_to_metric_families(get(url)[1]):
        for sample in family.samples:
            labels = ','.join(f'{k}={v}' for k, v in sorted(sample.labels.items()) if k != 'le')
            le = sample.labels.get('le')
            key = sample.name + (f'{{{labels}}}' if labels else '') + (f'[le={le}]' if le else '')
            samples[key] = sample.value
    return samples


def test_metrics_and_health_of_the_running_pipeline(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    port = free_port()
    base = f'http://127.0.0.1:{port}'
    env = {
        **pipeline_environment(kafka, services, topics, tmp_path / 'metrics.json'),
        'METRICS_PORT': str(port),
    }
    with running_pipeline(env, tmp_path / 'pipeline.log'):
        status, body = get(f'{base}/health')
        assert status == 200, body
        assert json.loads(body)['job_state'] == 'RUNNING'

        sent = produce(kafka.bootstrap_servers, topics, Scenario().small_wave(20))
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        written = read_all(
            kafka.bootstrap_servers,
            topics['predictions'],
            len(expected.predictions),
            OUTPUT_TIMEOUT_S,
        )
        assert (
            wait_for_commits(
                kafka.bootstrap_servers, env['GROUP_ID'], [topics['entry'], topics['focus']]
            )
            == {}
        )
        deadline = time.monotonic() + 30
        while True:  # the driver refreshes what it serves every METRICS_INTERVAL_SECONDS (1 s)
            samples = scrape(f'{base}/metrics')
            lags = {k: v for k, v in samples.items() if k.startswith('coupon_scoring_consumer_lag')}
            caught_up = (
                samples.get('coupon_scoring_predictions_written_total')
                == samples.get('coupon_scoring_focus_to_prediction_seconds_count')
                == len(written)
            )
            if (
                caught_up and len(lags) == 6 and not any(lags.values())
            ) or time.monotonic() > deadline:
                break
            time.sleep(1)

    # Exact: what Kafka shows (the lag, below). Best effort: Beam's counters, which Prism 2.73
    # was seen to lose updates of (docs/operations.md#which-figures-are-exact): never more than
    # there were, and the histogram consistent with itself.
    count = samples['coupon_scoring_focus_to_prediction_seconds_count']
    assert 0 < samples['coupon_scoring_predictions_written_total'] <= len(written)
    assert 0 < count <= len(written)
    assert samples['coupon_scoring_focus_to_prediction_seconds_bucket[le=+Inf]'] == count
    assert samples['coupon_scoring_focus_to_prediction_seconds_sum'] > 0
    fault_figures.update(
        results=len(written),
        written_not_counted=len(written) - samples['coupon_scoring_predictions_written_total'],
        latencies_not_counted=len(written) - count,
    )
    assert samples['coupon_scoring_job_running'] == 1
    assert lags == {
        f'coupon_scoring_consumer_lag{{partition={n},topic={topics[kind]}}}': 0
        for kind in ('entry', 'focus')
        for n in range(3)
    }
