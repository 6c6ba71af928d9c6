"""The fixed end-to-end scenario with KAFKA_IO=xlang: Java KafkaIO on Prism.

The same scenario and the same exact expected outputs as test_end_to_end.py, through
``python -m pipeline --runner=DirectRunner`` with Beam's cross-language ReadFromKafka /
WriteToKafka: the expansion service started from the launcher jar, the Java SDK harness
in the PROCESS environment. Skipped where the jars (scripts/bootstrap.sh) or Java are
missing. Prints the start-up time and the pipeline's latency figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeline.xlang.runtime import missing_runtime
from tests.integration.harness import pipeline_environment, running_pipeline
from tests.integration.outcomes import (
    ScenarioRun,
    as_dead_letter,
    as_prediction,
    assert_counted,
    run_fixed_scenario,
)
from tests.integration.test_operator_view import free_port, get
from tests.integration.test_partitions_added import add_partitions

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xlang,
    pytest.mark.skipif(missing_runtime() is not None, reason=f'xlang runtime: {missing_runtime()}'),
]


def test_xlang_scenario_ends_as_exactly_the_expected_predictions_and_dead_letters(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    run = run_fixed_scenario(kafka, services, topics, tmp_path, KAFKA_IO='xlang')
    assert_exact_xlang_outcome(run)
    fault_figures.update(
        xlang_start_up_s=round(run.start_up_s, 1),
        p50_ms=run.metrics['focus_to_prediction_p50_ms'],
        p99_ms=run.metrics['focus_to_prediction_p99_ms'],
    )


def assert_exact_xlang_outcome(run: ScenarioRun) -> None:
    """Exactly the expected predictions and dead letters, every input offset committed."""
    expected = run.expected
    got = [as_prediction(m) for m in run.written]
    assert len(got) == len(set(got)), 'duplicate prediction results'
    assert set(got) == expected.predictions
    assert {as_dead_letter(m) for m in run.letters} == expected.dead_letters
    assert len(run.letters) == len(expected.dead_letters)
    assert_counted(run.metrics, 'predictions.written', len(expected.predictions))
    # KafkaIO commits nothing itself: CommitEndedOffsets commits every ended record.
    assert run.uncommitted == {}


def test_a_partition_added_while_kafkaio_reads_is_reported_unread(
    kafka, services, topics, tmp_path: Path
):
    """KafkaIO's read takes the partitions of the job's start: one added later is not read, and
    the driver says so (pipeline/unread.py): a WARNING with the operator's step, /health 503
    with ``unread_partitions``, the gauge ``coupon_scoring_unread_partitions``."""
    port = free_port()
    env = {
        **pipeline_environment(kafka, services, topics, tmp_path / 'metrics.json'),
        'KAFKA_IO': 'xlang',
        'METRICS_PORT': str(port),
    }
    log = tmp_path / 'pipeline.log'
    with running_pipeline(env, log):
        status, body = get(f'http://127.0.0.1:{port}/health')
        assert (status, json.loads(body)['unread_partitions']) == (200, [])
        add_partitions(kafka.bootstrap_servers, [topics['focus']], 4)
        deadline = time.monotonic() + 30
        while 'is NOT read' not in log.read_text():
            assert time.monotonic() < deadline, 'the added partition was not reported'
            time.sleep(0.5)
        status, body = get(f'http://127.0.0.1:{port}/health')
        _, metrics = get(f'http://127.0.0.1:{port}/metrics')
    assert status == 503
    assert json.loads(body)['unread_partitions'] == [f'{topics["focus"]}/3']
    assert 'coupon_scoring_unread_partitions 1.0' in metrics
    assert 'without a savepoint' in log.read_text()
