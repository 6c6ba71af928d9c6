"""Faults of the outside world, slow cases: outages of tens of seconds and restarts.

Not in the default run (marker ``slow``); ``./run_tests.sh -m slow`` runs them. The same
accounting as the quick cases (``test_faults.py``): every valid focus event of the fixed
scenario ends as its predictions, a counted "no coupon above the threshold", or a dead
letter with a reason; restarts may repeat predictions (at-least-once), never lose one.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest
from kafka import KafkaConsumer, TopicPartition

from standins.kafka.broker import KafkaBroker, create_topics
from tests.integration.harness import (
    pipeline_environment,
    read_metrics,
    running_pipeline,
    start_pipeline,
    stop_pipeline,
    wait_for_metric,
)
from tests.integration.outcomes import (
    OUTPUT_TIMEOUT_S,
    as_dead_letter,
    as_prediction,
    assert_accounted,
    assert_counted,
    expected_outcome,
    produce,
    read_all,
)
from tests.integration.scenario import IndependentModel, Scenario
from tests.integration.test_faults import assert_outcome, own_services
from transforms.kafka.commit_metadata import ended_ahead_ranges
from transforms.quarantine import TEST_HOOK_ENV

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCORER_OUTAGE_S = 30
BROKER_OUTAGE_S = 20
OWN_BROKER_PORT = 19592
BURST_STOP_AFTER_S = 3


def test_scorer_down_30_s_the_backlog_drains_and_nothing_is_dropped(
    kafka, topics, tmp_path: Path, fault_figures: dict
):
    scenario, metrics_file = Scenario(), tmp_path / 'metrics.json'
    with own_services(tmp_path) as services:
        env = pipeline_environment(kafka, services, topics, metrics_file)
        with running_pipeline(env, tmp_path / 'pipeline.log'):
            sent = produce(kafka.bootstrap_servers, topics, scenario.warm_up())
            wait_for_metric(metrics_file, 'selection.focus_with_coupons', 1)
            services.stop_service('scorer')
            sent += produce(kafka.bootstrap_servers, topics, scenario.main_wave())
            time.sleep(SCORER_OUTAGE_S)
            services.start_service('scorer')
            back_at = time.monotonic()
            expected = expected_outcome(IndependentModel(services.db_path), sent)
            assert_outcome(kafka, topics, expected, metrics_file, env['GROUP_ID'])
            fault_figures['drained_after_s'] = round(time.monotonic() - back_at, 1)
            time.sleep(2)  # one more metrics report

    metrics = read_metrics(metrics_file)
    fault_figures['focus_ends_not_counted'] = assert_accounted(metrics, expected)
    assert metrics.get('dead_letters.scoring_failed', 0) == 0
    assert metrics['scorer.failed_requests_connection'] > 0
    assert metrics['scorer.cumulativeThrottlingSeconds'] > 0
    fault_figures.update(
        failed_attempts=metrics['scorer.failed_requests_connection'],
        throttled_s=metrics['scorer.cumulativeThrottlingSeconds'],
        p99_ms=metrics['focus_to_prediction_p99_ms'],
    )


def test_central_down_throughout_focus_events_are_scored_with_the_default_context(
    kafka, topics, tmp_path: Path, fault_figures: dict
):
    scenario, metrics_file = Scenario(), tmp_path / 'metrics.json'
    with own_services(tmp_path) as services:
        env = {
            **pipeline_environment(kafka, services, topics, metrics_file),
            'CENTRAL_RETRIES': '1',
        }
        with running_pipeline(env, tmp_path / 'pipeline.log'):
            warm = produce(kafka.bootstrap_servers, topics, scenario.warm_up())
            wait_for_metric(metrics_file, 'selection.focus_with_coupons', 1)
            services.stop_service('central')
            wave = produce(kafka.bootstrap_servers, topics, scenario.main_wave())
            expected = expected_outcome(
                IndependentModel(services.db_path),
                warm + wave,
                entry_dead_letter='context_fetch_failed',
                default_context=lambda focus: focus.customer_id != scenario.warm_customer,
            )
            warm_entry = {('context_fetch_failed', position) for _, position in warm}
            expected = dataclasses.replace(
                expected, dead_letters=expected.dead_letters - warm_entry
            )
            assert_outcome(kafka, topics, expected, metrics_file, env['GROUP_ID'])
            time.sleep(2)  # one more metrics report

    metrics = read_metrics(metrics_file)
    fault_figures['focus_ends_not_counted'] = assert_accounted(metrics, expected)
    defaulted = sum(1 for m, _ in wave if m.kind == 'focus')
    assert_counted(metrics, 'sessions.focus_with_default_context', defaulted)
    fault_figures.update(
        focus_with_default_context=defaulted, p99_ms=metrics['focus_to_prediction_p99_ms']
    )


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test alone, which it stops and starts."""
    broker = KafkaBroker(
        port=OWN_BROKER_PORT, controller_port=OWN_BROKER_PORT + 1, data_dir=tmp_path / 'kafka'
    )
    broker.start()
    yield broker
    broker.stop()


def test_broker_down_20_s_mid_stream_the_pipeline_reconnects_and_nothing_is_lost(
    own_broker, tmp_path: Path, fault_figures: dict
):
    scenario, metrics_file = Scenario(), tmp_path / 'metrics.json'
    topics = {kind: f'restart.{kind}' for kind in ('entry', 'focus', 'predictions', 'deadletters')}
    create_topics(own_broker.bootstrap_servers, list(topics.values()), partitions=3)
    with own_services(tmp_path) as services:
        env = pipeline_environment(own_broker, services, topics, metrics_file)
        with running_pipeline(env, tmp_path / 'pipeline.log') as process:
            wave = scenario.main_wave()
            half = len(wave) // 2
            sent = produce(own_broker.bootstrap_servers, topics, wave[:half])
            wait_for_metric(metrics_file, 'predictions.written', 1)
            own_broker.stop()
            time.sleep(BROKER_OUTAGE_S)
            own_broker.start()
            back_at = time.monotonic()
            assert process.poll() is None, 'the pipeline stopped while the broker was down'
            sent += produce(own_broker.bootstrap_servers, topics, wave[half:])
            expected = expected_outcome(IndependentModel(services.db_path), sent)
            written = read_all(
                own_broker.bootstrap_servers,
                topics['predictions'],
                len(expected.predictions),
                OUTPUT_TIMEOUT_S,
            )
            fault_figures['complete_after_restart_s'] = round(time.monotonic() - back_at, 1)
            letters = read_all(
                own_broker.bootstrap_servers, topics['deadletters'], len(expected.dead_letters), 30
            )

    got = [as_prediction(m) for m in written]
    assert set(got) == expected.predictions
    assert {as_dead_letter(m) for m in letters} == expected.dead_letters
    fault_figures.update(duplicate_predictions=len(got) - len(set(got)))


@pytest.mark.parametrize(
    'how', [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=['SIGTERM', 'Ctrl-C', 'SIGKILL']
)
def test_restart_after_a_burst_loses_nothing_and_a_drained_stop_repeats_nothing(
    kafka, services, topics, tmp_path: Path, fault_figures: dict, how: signal.Signals
):
    """A burst of about 1,000 messages, the stop 3 s after the last one was sent, a restart
    with the same group. SIGTERM and Ctrl-C drain: 0 repeats. SIGKILL: repeats are counted."""
    scenario, metrics_file, log = Scenario(), tmp_path / 'metrics.json', tmp_path / 'pipeline.log'
    env = pipeline_environment(kafka, services, topics, metrics_file)

    process = start_pipeline(env, log)
    sent = produce(kafka.bootstrap_servers, topics, scenario.warm_up())
    wait_for_metric(metrics_file, 'predictions.written', 1)
    sent += produce(kafka.bootstrap_servers, topics, scenario.main_wave())
    time.sleep(BURST_STOP_AFTER_S)
    stopping = time.monotonic()
    stop_pipeline(process, how)
    fault_figures['stopped_in_s'] = round(time.monotonic() - stopping, 1)
    fault_figures['written_not_committed_at_stop'] = written_not_committed(
        kafka.bootstrap_servers, env['GROUP_ID'], topics['predictions']
    )
    with running_pipeline(env, log):
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        written = read_all(
            kafka.bootstrap_servers,
            topics['predictions'],
            len(expected.predictions),
            OUTPUT_TIMEOUT_S,
        )
        letters = read_all(
            kafka.bootstrap_servers, topics['deadletters'], len(expected.dead_letters), 30
        )

    got = [as_prediction(m) for m in written]
    missing = expected.predictions - set(got)
    counts = collections.Counter(got)
    repeats = sum(n - 1 for n in counts.values())
    fault_figures.update(
        burst_messages=len(sent),
        lost_predictions=len(missing),
        duplicate_predictions=repeats,
        repeated_focus_events=len({p[0] for p, n in counts.items() if n > 1}),
        skipped_on_restart=read_metrics(metrics_file).get(
            'offsets.skipped_ended_before_restart', 0
        ),
        duplicate_dead_letters=len(letters) - len({as_dead_letter(m) for m in letters}),
    )
    if how != signal.SIGKILL:  # both drain
        drain = re.search(r'drain (complete|incomplete) after ([\d.]+) s', log.read_text())
        fault_figures.update(drain=drain.group(1), drain_s=float(drain.group(2)))
        assert drain.group(1) == 'complete'
        assert repeats == 0, f'{repeats} prediction results repeated after a drained stop'
    assert not missing, f'{len(missing)} predictions lost, e.g. {sorted(missing)[:3]}'
    assert set(got) == expected.predictions
    assert {as_dead_letter(m) for m in letters} == expected.dead_letters


def written_not_committed(bootstrap: str, group: str, prediction_topic: str) -> int:
    """Focus events whose predictions are on the topic but whose offset the group's last
    commit neither passed nor listed as ended beyond it: what a restart will repeat."""
    written = {m['focus_event_id'] for m in read_all(bootstrap, prediction_topic, 0, 5)}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        commits = {}
        left = 0
        for event_id in written:
            topic, partition, offset = event_id.rsplit('/', 2)
            tp = TopicPartition(topic, int(partition))
            if tp not in commits:
                commits[tp] = consumer.committed(tp, metadata=True)
            committed = commits[tp]
            ranges = ended_ahead_ranges(committed.metadata) if committed else []
            covered = committed is not None and int(offset) < committed.offset
            left += not (covered or any(a <= int(offset) < b for a, b in ranges))
        return left
    finally:
        consumer.close()


def test_a_record_failing_the_job_on_two_starts_is_dead_lettered_as_poison_pill_on_the_third(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    """The test hook (TEST_FAIL_ON_RECORD) makes one focus event raise inside the pipeline,
    as a bug would; the job fails on it twice, the third start quarantines it."""
    metrics_file, log = tmp_path / 'metrics.json', tmp_path / 'pipeline.log'
    sent = produce(kafka.bootstrap_servers, topics, Scenario().small_wave(20))
    pill = next(position for message, position in sent if message.kind == 'focus')
    env = {
        **pipeline_environment(kafka, services, topics, metrics_file),
        'FAILURE_JOURNAL': str(tmp_path / 'failures.json'),
        TEST_HOOK_ENV: pill,
    }

    exits = []
    for _ in range(2):
        process = start_pipeline(env, log, ready='pipeline started')  # it may fail soon after
        exits.append(process.wait(timeout=OUTPUT_TIMEOUT_S))
    with running_pipeline(env, log) as process:
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        pill_predictions = {p for p in expected.predictions if p[0] == pill}
        written = read_all(
            kafka.bootstrap_servers,
            topics['predictions'],
            len(expected.predictions - pill_predictions),
            OUTPUT_TIMEOUT_S,
        )
        letters = read_all(kafka.bootstrap_servers, topics['deadletters'], 1, 30)
        assert process.poll() is None, 'the third start failed too'

    assert exits == [1, 1]
    assert {as_prediction(m) for m in written} == expected.predictions - pill_predictions
    assert [as_dead_letter(m) for m in letters] == [('poison_pill', pill)]
    assert TEST_HOOK_ENV in letters[0]['detail']
    fault_figures.update(failed_starts=len(exits), poison_pill=pill)
