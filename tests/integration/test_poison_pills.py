"""No message can stop the pipeline: oversized input, writes the broker refuses.

Each case runs the real ``python -m pipeline --runner=DirectRunner`` against the real
broker: the poison is dead-lettered (or, when the dead-letter write itself is refused,
counted and logged as dropped), the valid events around it come out exactly, the job is
still running afterwards, and every input offset is committed.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from standins.kafka.broker import create_topics
from tests.integration.harness import pipeline_environment, read_metrics, running_pipeline
from tests.integration.outcomes import (
    OUTPUT_TIMEOUT_S,
    Expected,
    as_dead_letter,
    as_prediction,
    expected_outcome,
    produce,
    read_all,
    wait_for_commits,
)
from tests.integration.scenario import IndependentModel, Message, Scenario

pytestmark = pytest.mark.integration
BROKER_MESSAGE_MAX_BYTES = 1_048_588  # Kafka's default message.max.bytes, the test broker's
OVERSIZED_FRACTIONS = (0.5, 0.9, 0.999)
WRITE_TIMEOUT_S = '5'


def oversized(topic_kind: str, fraction: float) -> Message:
    """A focus- or entry-looking JSON message of ``fraction`` of the broker's limit."""
    size = int(BROKER_MESSAGE_MAX_BYTES * fraction)
    head = json.dumps(
        {
            'event_type': f'customer {topic_kind}',
            'event_timestamp': '2026-11-29T10:00:00Z',
            'payload': {'customer_id': 1, 'department_id': 1},
            'pad': '',
        }
    )[:-2]
    value = (head + 'x' * (size - len(head) - 2) + '"}').encode()
    return Message(topic_kind, f'oversized-{fraction}'.encode(), value, 'too_large')


def small_scenario() -> list[Message]:
    return Scenario().small_wave(40)


def test_oversized_messages_on_both_topics_are_dead_lettered_and_the_rest_is_exact(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    metrics_file = tmp_path / 'metrics.json'
    env = pipeline_environment(kafka, services, topics, metrics_file)
    pills = [oversized(kind, f) for kind in ('entry', 'focus') for f in OVERSIZED_FRACTIONS]
    valid = small_scenario()
    with running_pipeline(env, tmp_path / 'pipeline.log') as process:
        sent = produce(
            kafka.bootstrap_servers,
            topics,
            valid[:40] + pills + valid[40:],
            max_request_size=2 * BROKER_MESSAGE_MAX_BYTES,
        )
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        written, letters = read_outputs(kafka, topics, expected)
        left = wait_for_commits(
            kafka.bootstrap_servers, env['GROUP_ID'], [topics['entry'], topics['focus']]
        )
        assert process.poll() is None, 'the pipeline stopped'

    assert {as_prediction(m) for m in written} == expected.predictions
    assert {as_dead_letter(m) for m in letters} == expected.dead_letters
    by_position = {as_dead_letter(m)[1]: m for m in letters}
    for message, position in sent:
        if message.kind == 'too_large':
            letter = by_position[position]
            assert letter['truncated'] is True
            assert letter['original_size'] == len(message.value)
            assert letter['original_sha256'] == hashlib.sha256(message.value).hexdigest()
            assert letter_bytes(letter) < 100 * 1024
    assert left == {}
    fault_figures.update(
        oversized=len(pills), largest_dead_letter_bytes=max(map(letter_bytes, letters))
    )


def letter_bytes(letter: dict) -> int:
    """The size of a dead letter's value as written (read_all adds its key)."""
    return len(json.dumps({k: v for k, v in letter.items() if k != 'key'}, separators=(',', ':')))


def read_outputs(
    kafka, topics: dict[str, str], expected: Expected, letters_count: int | None = None
) -> tuple[list[dict], list[dict]]:
    written = read_all(
        kafka.bootstrap_servers, topics['predictions'], len(expected.predictions), OUTPUT_TIMEOUT_S
    )
    count = len(expected.dead_letters) if letters_count is None else letters_count
    letters = read_all(kafka.bootstrap_servers, topics['deadletters'], count, OUTPUT_TIMEOUT_S)
    return written, letters


def publish_failed(expected: Expected) -> frozenset:
    """The dead letters of focus events whose prediction results the broker refused."""
    return frozenset(('publish_failed', prediction[0]) for prediction in expected.predictions)


def test_predictions_too_large_for_their_topic_end_as_publish_failed_dead_letters(
    kafka, services, tmp_path: Path, fault_figures: dict
):
    topics = own_topics(kafka, predictions={'max.message.bytes': '100'})
    metrics_file = tmp_path / 'metrics.json'
    env = pipeline_environment(kafka, services, topics, metrics_file)
    with running_pipeline(env, tmp_path / 'pipeline.log') as process:
        sent = produce(kafka.bootstrap_servers, topics, small_scenario())
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        letters_expected = expected.dead_letters | publish_failed(expected)
        _, letters = read_outputs(kafka, topics, Expected(frozenset(), letters_expected, 0, 0))
        left = wait_for_commits(
            kafka.bootstrap_servers, env['GROUP_ID'], [topics['entry'], topics['focus']]
        )
        assert process.poll() is None, 'the pipeline stopped'

    assert {as_dead_letter(m) for m in letters} == letters_expected
    assert all(
        'MessageSizeTooLarge' in m['detail'] for m in letters if m['reason'] == 'publish_failed'
    )
    assert left == {}
    fault_figures.update(publish_failed=len(publish_failed(expected)))


def test_dead_letters_too_large_for_their_topic_are_counted_and_logged_as_dropped(
    kafka, services, tmp_path: Path, fault_figures: dict
):
    topics = own_topics(kafka, deadletters={'max.message.bytes': '600'})
    metrics_file = tmp_path / 'metrics.json'
    env = pipeline_environment(kafka, services, topics, metrics_file)
    log = tmp_path / 'pipeline.log'
    # 20 KB: too_large, and their dead letters too large for this topic; a short one fits.
    pills = [oversized('focus', 0.02), oversized('entry', 0.02)]
    fits = Message('focus', b'short', b'{not json', 'not_json')
    with running_pipeline(env, log) as process:
        sent = produce(kafka.bootstrap_servers, topics, pills + [fits] + small_scenario())
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        written, letters = read_outputs(kafka, topics, expected, letters_count=1)
        left = wait_for_commits(
            kafka.bootstrap_servers, env['GROUP_ID'], [topics['entry'], topics['focus']]
        )
        time.sleep(2)  # one more metrics report
        assert process.poll() is None, 'the pipeline stopped'

    assert {as_prediction(m) for m in written} == expected.predictions
    assert [as_dead_letter(m)[0] for m in letters] == ['not_json']
    dropped = [position for message, position in sent if message.kind == 'too_large']
    assert read_metrics(metrics_file)['dead_letters.dropped'] == len(dropped)
    text = log.read_text()
    assert all(
        f'dead letter dropped, the dead-letter topic refused it: source {position}' in text
        for position in dropped
    )
    assert left == {}
    fault_figures.update(dropped=len(dropped))


def test_prediction_topic_deleted_while_running_its_results_become_dead_letters(
    kafka, services, tmp_path: Path, fault_figures: dict
):
    topics = own_topics(kafka)
    metrics_file = tmp_path / 'metrics.json'
    env = {
        **pipeline_environment(kafka, services, topics, metrics_file),
        'KAFKA_WRITE_TIMEOUT_SECONDS': WRITE_TIMEOUT_S,
    }
    scenario = small_scenario()
    with running_pipeline(env, tmp_path / 'pipeline.log') as process:
        warm = produce(kafka.bootstrap_servers, topics, scenario[:2])
        read_all(kafka.bootstrap_servers, topics['predictions'], 1, OUTPUT_TIMEOUT_S)
        with_admin(kafka, lambda admin: admin.delete_topics([topics['predictions']]))
        deleted_at = time.monotonic()
        sent = produce(kafka.bootstrap_servers, topics, scenario[2:])
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        letters_expected = expected.dead_letters | publish_failed(expected)
        letters = read_all(
            kafka.bootstrap_servers, topics['deadletters'], len(letters_expected), OUTPUT_TIMEOUT_S
        )
        fault_figures['all_dead_lettered_after_s'] = round(time.monotonic() - deleted_at, 1)
        left = wait_for_commits(
            kafka.bootstrap_servers, env['GROUP_ID'], [topics['entry'], topics['focus']]
        )
        assert process.poll() is None, 'the pipeline stopped'

    assert warm
    assert {as_dead_letter(m) for m in letters} == letters_expected
    assert left == {}
    fault_figures.update(publish_failed=len(publish_failed(expected)))


def own_topics(kafka, **configs: dict[str, str]) -> dict[str, str]:
    """Topics of this test alone; ``configs``: a topic kind's own settings."""
    run = f'{time.time_ns() % 10**10}'
    names = {kind: f'pp.{run}.{kind}' for kind in ('entry', 'focus', 'predictions', 'deadletters')}
    for kind, name in names.items():
        create_topics(
            kafka.bootstrap_servers, [name], partitions=3, topic_configs=configs.get(kind)
        )
    return names


def with_admin(kafka, action) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        action(admin)
    finally:
        admin.close()
