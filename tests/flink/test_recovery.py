"""A TaskManager killed mid-stream: Flink restores the job from its last checkpoint by itself.

The fixed scenario's main wave in two halves on Flink (parallelism 2, PROCESS workers): after
the first half's first prediction the TaskManager JVM and its Python workers get SIGKILL and a
new TaskManager starts; the second half is sent while the job restarts. Nothing is lost: every
expected prediction and dead letter is written, every input offset committed. What was in
flight since the last checkpoint is processed again: its repeats are counted by
``focus_event_id`` and reported with the recovery times (pytest's summary).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.flink.job import FlinkJob
from tests.flink.conftest import flink_runner_args
from tests.integration.harness import pipeline_environment, running_pipeline, wait_for_metric
from tests.integration.outcomes import (
    OUTPUT_TIMEOUT_S,
    assert_none_lost,
    expected_outcome,
    produce,
    read_all,
    wait_for_commits,
)
from tests.integration.scenario import IndependentModel, Scenario

pytestmark = [pytest.mark.integration, pytest.mark.flink]

RECOVERY_TIMEOUT_S = 120


class _Written:
    """How many messages a topic holds, asked of one consumer that waits long for the broker's
    API versions: under the load of a recovery a new kafka-python client's 2 s version probe
    timed out, it fell back to guessing an old broker and sent requests Kafka 4 refuses
    (ListOffsets v0) until the test gave up."""

    def __init__(self, bootstrap: str, topic: str):
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, api_version_auto_timeout_ms=60_000
        )
        self._partitions = [
            TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic)
        ]

    def __call__(self) -> int:
        return sum(self._consumer.end_offsets(self._partitions).values())

    def close(self) -> None:
        self._consumer.close()


def _seconds_until(condition, timeout_s: float = RECOVERY_TIMEOUT_S) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout_s, 'the job did not recover'
        time.sleep(0.2)
    return time.monotonic() - began


def test_taskmanager_killed_mid_stream_the_job_recovers_by_itself_and_loses_nothing(
    kafka, services, topics, flink, flink_job_server_jar, tmp_path: Path, fault_figures: dict
):
    scenario, metrics_file = Scenario(), tmp_path / 'metrics.json'
    bootstrap = kafka.bootstrap_servers
    env = {
        **pipeline_environment(kafka, services, topics, metrics_file),
        'FLINK_SAVEPOINT_DIR': str(tmp_path / 'savepoints'),
    }
    written_now = _Written(bootstrap, topics['predictions'])
    job_name = f'coupon-scoring-recovery-{uuid.uuid4().hex[:8]}'
    runner_args = flink_runner_args(flink, flink_job_server_jar, f'--job_name={job_name}')
    job = FlinkJob(flink.rest_url, job_name)
    with running_pipeline(env, tmp_path / 'pipeline.log', runner_args) as process:
        wave = scenario.main_wave()
        half = len(wave) // 2
        sent = produce(bootstrap, topics, wave[:half])
        wait_for_metric(metrics_file, 'predictions.written', 1)
        written_before = written_now()
        killed = flink.kill_taskmanager()
        flink.start_taskmanager()
        sent += produce(bootstrap, topics, wave[half:])
        failed_s = _seconds_until(lambda: not job.running())
        running_again_s = failed_s + _seconds_until(job.running)
        first_output_s = _seconds_until(lambda: written_now() > written_before)
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        written = read_all(
            bootstrap, topics['predictions'], len(expected.predictions), OUTPUT_TIMEOUT_S
        )
        letters = read_all(bootstrap, topics['deadletters'], len(expected.dead_letters), 30)
        left = wait_for_commits(bootstrap, env['GROUP_ID'], [topics['entry'], topics['focus']])
        assert process.poll() is None, 'the submitting process stopped'
    written_now.close()

    figures = assert_none_lost(expected, written, letters, left)
    fault_figures.update(
        killed=killed,
        failure_noticed_s=round(failed_s, 1),
        running_again_s=round(running_again_s, 1),
        first_output_after_kill_s=round(running_again_s + first_output_s, 1),
        **figures,
    )
