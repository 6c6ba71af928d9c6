"""A TaskManager killed mid-stream: Flink restores the job from its last checkpoint by itself.

The fixed scenario's main wave in two halves on Flink (parallelism 2, PROCESS workers): once
every prediction of the first half is written, the TaskManager JVM and its Python workers get
SIGKILL and a new TaskManager starts; the second half is sent while the job restarts. Nothing
is lost: every expected prediction and dead letter is written, every input offset committed.
KafkaIO's read goes back to the last completed checkpoint and reads again what came after it:
by default its focus events are scored and published again (counted by ``focus_event_id``
and reported with the recovery times in pytest's summary). With ENDED_LEDGER=on the ended
ledger (transforms.kafka.ledger) skips those it recorded as published: the second test
takes that to its limit, no checkpoint before the kill, the whole first half read again, and
only what the ledger had not recorded at the kill may be published twice.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.flink.job import FlinkJob
from tests.flink.conftest import flink_runner_args
from tests.integration.harness import pipeline_environment, read_metrics, running_pipeline
from tests.integration.outcomes import (
    OUTPUT_TIMEOUT_S,
    assert_none_lost,
    expected_outcome,
    produce,
    read_all,
    wait_for_commits,
)
from tests.integration.scenario import IndependentModel, Scenario
from transforms.kafka.ledger import LedgerView

pytestmark = [pytest.mark.integration, pytest.mark.flink]

RECOVERY_TIMEOUT_S = 120
COMMITS_TIMEOUT_S = 30


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


def _unrecorded(bootstrap: str, ledger_group: str, topic: str) -> int:
    """How many of ``topic``'s records the ended ledger does not record as ended yet."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=ledger_group, enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(partitions)
        views = {tp: LedgerView.of(consumer.committed(tp, metadata=True)) for tp in partitions}
        return sum(not views[tp].ended(o) for tp in partitions for o in range(ends[tp]))
    finally:
        consumer.close()


def _kill_mid_stream(
    kafka, services, topics, flink, jar: str, tmp_path: Path, ledger: bool = False
) -> dict:
    """The main wave's first half, all of its predictions written, a TaskManager SIGKILLed
    and a new one started, the second half sent while the job restarts; returns the figures
    after checking that nothing was lost and every input offset committed: to the group
    (KafkaIO commits it at checkpoints) or, ``ledger`` (ENDED_LEDGER=on, no checkpoint for
    10 minutes), to the ended ledger."""
    scenario, metrics_file = Scenario(), tmp_path / 'metrics.json'
    bootstrap = kafka.bootstrap_servers
    env = {
        **pipeline_environment(kafka, services, topics, metrics_file),
        'FLINK_SAVEPOINT_DIR': str(tmp_path / 'savepoints'),
        **({'ENDED_LEDGER': 'on', 'FLINK_CHECKPOINT_INTERVAL_MS': '600000'} if ledger else {}),
    }
    model = IndependentModel(services.db_path)
    written_now = _Written(bootstrap, topics['predictions'])
    job_name = f'coupon-scoring-recovery-{uuid.uuid4().hex[:8]}'
    runner_args = flink_runner_args(flink, jar, f'--job_name={job_name}')
    job = FlinkJob(flink.rest_url, job_name)
    with running_pipeline(env, tmp_path / 'pipeline.log', runner_args) as process:
        wave = scenario.main_wave()
        half = len(wave) // 2
        sent = produce(bootstrap, topics, wave[:half])
        first_half = len(expected_outcome(model, sent).predictions)
        _seconds_until(lambda: written_now() >= first_half)
        written_before = written_now()
        ledger_group = f'{env["GROUP_ID"]}.ended'
        unrecorded = _unrecorded(bootstrap, ledger_group, topics['focus']) if ledger else None
        killed = flink.kill_taskmanager()
        flink.start_taskmanager()
        sent += produce(bootstrap, topics, wave[half:])
        failed_s = _seconds_until(lambda: not job.running())
        running_again_s = failed_s + _seconds_until(job.running)
        first_output_s = _seconds_until(lambda: written_now() > written_before)
        expected = expected_outcome(model, sent)
        written = read_all(
            bootstrap, topics['predictions'], len(expected.predictions), OUTPUT_TIMEOUT_S
        )
        letters = read_all(bootstrap, topics['deadletters'], len(expected.dead_letters), 30)
        group = ledger_group if ledger else env['GROUP_ID']
        left = wait_for_commits(
            bootstrap, group, [topics['entry'], topics['focus']], COMMITS_TIMEOUT_S
        )
        skipped = read_metrics(metrics_file).get('offsets.skipped_ended_before_restart', 0)
        assert process.poll() is None, 'the submitting process stopped'
    written_now.close()

    return dict(
        killed=killed,
        failure_noticed_s=round(failed_s, 1),
        running_again_s=round(running_again_s, 1),
        first_output_after_kill_s=round(running_again_s + first_output_s, 1),
        published_before_kill=written_before,
        **({} if unrecorded is None else {'focus_events_not_in_ledger_at_kill': unrecorded}),
        skipped_as_published=skipped,
        **assert_none_lost(expected, written, letters, left),
    )


def test_taskmanager_killed_mid_stream_the_job_recovers_by_itself_and_loses_nothing(
    kafka, services, topics, flink, flink_job_server_jar, tmp_path: Path, fault_figures: dict
):
    fault_figures.update(
        _kill_mid_stream(kafka, services, topics, flink, flink_job_server_jar, tmp_path)
    )


def test_a_restore_from_before_the_published_focus_events_repeats_only_what_the_ledger_lacked(
    kafka, services, topics, flink, flink_job_server_jar, tmp_path: Path, fault_figures: dict
):
    """ENDED_LEDGER=on, and no checkpoint completes before the kill (they come every 10
    minutes), so the job restarts from the offsets it started at and reads the whole first
    half again: the ended ledger (transforms.kafka.ledger) skips every focus event it
    recorded as published. What it had not recorded yet at the kill (the writer hands its
    acknowledgements on every 0.1 s, then the committer's bundle commits) may repeat: the
    repeats stay within that count, measured just before the kill."""
    figures = _kill_mid_stream(
        kafka, services, topics, flink, flink_job_server_jar, tmp_path, ledger=True
    )
    fault_figures.update(figures)
    assert figures['focus_events_repeated'] <= figures['focus_events_not_in_ledger_at_kill']
