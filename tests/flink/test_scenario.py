"""The fixed scenario on Flink: exact at parallelism 2, with two Python worker processes.

The same scenario, broker, stand-ins and assertions as tests/integration/test_end_to_end.py,
with ``--runner=FlinkRunner`` on a local Flink 1.20.4 session cluster in the PROCESS
environment (Flink's default here): the predictions and dead letters are exactly the expected
ones, the metrics (read from Flink's REST API) account for every focus event, and every input
offset is committed although each partition's marks come from two worker processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.xlang.runtime import missing_runtime
from tests.flink.conftest import flink_runner_args, python_workers
from tests.integration.outcomes import run_fixed_scenario
from tests.integration.test_end_to_end import assert_exact_outcome
from tests.integration.test_xlang import assert_exact_xlang_outcome

pytestmark = [pytest.mark.integration, pytest.mark.flink]


def test_scenario_is_exact_on_flink_at_parallelism_2(
    kafka, services, topics, flink, flink_job_server_jar, tmp_path: Path, fault_figures: dict
):
    runner_args = flink_runner_args(flink, flink_job_server_jar)
    workers_before = python_workers(flink)
    run = run_fixed_scenario(kafka, services, topics, tmp_path, runner_args)
    metrics = assert_exact_outcome(run)
    assert len(python_workers(flink) - workers_before) >= 2, 'fewer than 2 Python workers'
    fault_figures.update(
        runner='flink',
        start_up_s=round(run.start_up_s, 1),
        p50_ms=metrics['focus_to_prediction_p50_ms'],
        p99_ms=metrics['focus_to_prediction_p99_ms'],
    )


def test_every_partition_is_read_when_a_checkpoint_comes_during_the_first_bundles(
    kafka, services, topics, flink, flink_job_server_jar, tmp_path: Path
):
    """Checkpoints every 200 ms from the job's start, so that they fall while the read's first
    stages (the partitions listed, then paired with their start offsets) finish their only
    bundles. Without ``--finish_bundle_before_checkpointing`` what those bundles output during
    a snapshot waited in the stage's state for a next bundle that never came: of 6
    partitions, 2 reached the read and no focus event was read."""
    runner_args = flink_runner_args(flink, flink_job_server_jar)
    run = run_fixed_scenario(
        kafka, services, topics, tmp_path, runner_args, FLINK_CHECKPOINT_INTERVAL_MS='200'
    )
    assert_exact_outcome(run)


@pytest.mark.xlang
@pytest.mark.skipif(missing_runtime() is not None, reason=f'xlang runtime: {missing_runtime()}')
def test_xlang_scenario_is_exact_on_flink_at_parallelism_2(
    kafka, services, topics, flink, flink_job_server_jar, tmp_path: Path, fault_figures: dict
):
    """KAFKA_IO=xlang: Java KafkaIO, its Java harness started by the TaskManager
    (pipeline/xlang/java_harness.sh, PROCESS environment)."""
    runner_args = flink_runner_args(flink, flink_job_server_jar)
    run = run_fixed_scenario(kafka, services, topics, tmp_path, runner_args, KAFKA_IO='xlang')
    assert_exact_xlang_outcome(run)
    fault_figures.update(
        runner='flink',
        kafka_io='xlang',
        start_up_s=round(run.start_up_s, 1),
        p50_ms=run.metrics['focus_to_prediction_p50_ms'],
        p99_ms=run.metrics['focus_to_prediction_p99_ms'],
    )
