"""Stop and resume like Flink: Ctrl-C takes a savepoint, the next start resumes from it.

With the Flink default read (KAFKA_IO=xlang-read: KafkaIO as a native Flink source, its offsets
in Flink's state), the fixed scenario's main wave is sent in two halves. After the first
half's first prediction the pipeline gets SIGINT, mid-stream: it stops the job with a savepoint
(Flink's REST API) and records where. The second half is sent while nothing runs. The next
start resumes from that savepoint: every expected prediction and dead letter is written, every
input offset committed, and the focus events repeated are counted by ``focus_event_id``
(goal 0), with the stop's and the resume's durations (pytest's summary).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.flink.conftest import flink_runner_args
from tests.integration.harness import (
    pipeline_environment,
    start_pipeline,
    stop_pipeline,
    wait_for_metric,
)
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


def test_a_stop_takes_a_savepoint_and_the_next_start_resumes_from_it(
    kafka, services, topics, flink, flink_job_server_jar, tmp_path: Path, fault_figures: dict
):
    bootstrap, metrics_file = kafka.bootstrap_servers, tmp_path / 'metrics.json'
    env = {
        **pipeline_environment(kafka, services, topics, metrics_file),
        'FLINK_SAVEPOINT_DIR': str(tmp_path / 'savepoints'),
    }
    runner_args = flink_runner_args(flink, flink_job_server_jar)
    wave = Scenario().main_wave()
    half = len(wave) // 2

    first_log = tmp_path / 'first.log'
    process = start_pipeline(env, first_log, runner_args=runner_args)
    sent = produce(bootstrap, topics, wave[:half])
    wait_for_metric(metrics_file, 'predictions.written', 1)
    stopping = time.monotonic()
    stop_pipeline(process)
    stop_s = time.monotonic() - stopping
    assert 'stopped with savepoint' in first_log.read_text(), first_log.read_text()[-3000:]

    sent += produce(bootstrap, topics, wave[half:])
    second_log = tmp_path / 'second.log'
    starting = time.monotonic()
    process = start_pipeline(env, second_log, runner_args=runner_args)
    try:
        resume_s = time.monotonic() - starting
        assert 'resuming from savepoint' in second_log.read_text()
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        written = read_all(
            bootstrap, topics['predictions'], len(expected.predictions), OUTPUT_TIMEOUT_S
        )
        letters = read_all(bootstrap, topics['deadletters'], len(expected.dead_letters), 30)
        left = wait_for_commits(bootstrap, env['GROUP_ID'], [topics['entry'], topics['focus']])
    finally:
        stop_pipeline(process)

    figures = assert_none_lost(expected, written, letters, left)
    fault_figures.update(
        stop_with_savepoint_s=round(stop_s, 1),
        resumed_reading_s=round(resume_s, 1),
        **figures,
    )
    assert figures['focus_events_repeated'] == 0, 'focus events repeated after a savepoint stop'
