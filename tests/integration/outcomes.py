"""Producing a scenario to Kafka, reading what the pipeline wrote, and the expected outcome.

Every valid focus event must end as its predictions, as a counted "no coupon above the
threshold", or as a dead letter with a reason; ``Expected`` holds what that means for a
produced scenario, computed with the independent model of ``scenario.py``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from standins.kafka.broker import create_topics
from tests.integration.harness import (
    DIRECT_RUNNER,
    pipeline_environment,
    read_metrics,
    running_pipeline,
)
from tests.integration.scenario import IndependentModel, Message, Scenario

Sent = list[tuple[Message, str]]  # each message with its position 'topic/partition/offset'
OUTPUT_TIMEOUT_S = 240


def new_topics(kafka, *kinds: str) -> dict[str, str]:
    """Topics of their own (3 partitions each) for a module's runs, by kind."""
    run = uuid.uuid4().hex[:8]
    names = {kind: f'it.{run}.{kind}' for kind in kinds}
    create_topics(kafka.bootstrap_servers, list(names.values()), partitions=3)
    return names


def iso(moment: datetime) -> str:
    """A time as the jobs on the past take it (--replay_from, --replay_to)."""
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def produce(
    bootstrap: str,
    topics: dict[str, str],
    messages: list[Message],
    partition_of: Optional[Callable[[Message], int]] = None,
    **client_config: Any,
) -> Sent:
    """Sends the messages (to the partition ``partition_of`` says, else by key); returns each
    with its position. ``client_config``: security. A new producer: it lists the partitions
    afresh."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks='all', **client_config)
    futures = [
        (
            m,
            producer.send(
                topics[m.topic_kind],
                key=m.key,
                value=m.value,
                partition=partition_of(m) if partition_of else None,
            ),
        )
        for m in messages
    ]
    producer.flush()
    sent = []
    for message, future in futures:
        meta = future.get()
        sent.append((message, f'{meta.topic}/{meta.partition}/{meta.offset}'))
    producer.close()
    return sent


@dataclasses.dataclass(frozen=True)
class Expected:
    """The outcome of a scenario: prediction tuples, (reason, position) dead letters and the
    number of focus events with no coupon above the threshold."""

    predictions: frozenset
    dead_letters: frozenset
    no_coupon: int
    focus_count: int


def expected_outcome(
    model: IndependentModel,
    sent: Sent,
    entry_dead_letter: Optional[str] = None,
    default_context: Callable[[Message], bool] = lambda m: False,
) -> Expected:
    """What the pipeline must write for ``sent``.

    ``entry_dead_letter``: the reason every entry event ends with (the central was down);
    ``default_context(focus)``: whether that focus event is scored without a profile.
    """
    predictions, dead_letters, no_coupon, focus_count = set(), set(), 0, 0
    for message, position in sent:
        if message.kind == 'focus':
            focus_count += 1
        if message.kind == 'focus' and not model.has_department(message.department_id):
            dead_letters.add(('unknown_department', position))
        elif message.kind == 'focus':
            best = model.best_coupons(
                message.customer_id,
                message.department_id,
                with_profile=not default_context(message),
            )
            no_coupon += not best
            predictions |= {
                (position, message.customer_id, coupon, p, message.event_timestamp)
                for coupon, p in best
            }
        elif message.kind == 'entry' and entry_dead_letter:
            dead_letters.add((entry_dead_letter, position))
        elif message.kind != 'entry':
            dead_letters.add((message.kind, position))
    return Expected(frozenset(predictions), frozenset(dead_letters), no_coupon, focus_count)


def read_all(
    bootstrap: str, topic: str, count: int, timeout_s: float, **client_config: Any
) -> list[dict]:
    """Reads the topic until ``count`` messages came, then 3 s more for extras."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset='earliest',
        consumer_timeout_ms=1000,
        **client_config,
    )
    messages, deadline, settle_until = [], time.monotonic() + timeout_s, None
    while time.monotonic() < deadline and (settle_until is None or time.monotonic() < settle_until):
        for record in consumer:
            messages.append({'key': record.key, **json.loads(record.value)})
        if len(messages) >= count and settle_until is None:
            settle_until = time.monotonic() + 3
    consumer.close()
    return messages


def as_prediction(message: dict) -> tuple:
    payload = message['payload']
    return (
        message['focus_event_id'],
        payload['customer_id'],
        payload['coupon_id'],
        round(payload['prediction'], 6),
        message['event_timestamp'],
    )


def as_dead_letter(message: dict) -> tuple[str, str]:
    return (
        message['reason'],
        f"{message['source_topic']}/{message['source_partition']}/{message['source_offset']}",
    )


def focus_ends(metrics: dict) -> int:
    """Focus events counted as ended: with coupons, with none above the threshold, or as a
    dead letter of the focus path."""
    return (
        metrics.get('selection.focus_with_coupons', 0)
        + metrics.get('selection.no_coupon_above_threshold', 0)  # absent: none counted
        + sum(
            metrics.get(f'dead_letters.{reason}', 0)
            for reason in ('unknown_department', 'scoring_failed')
        )
    )


def assert_accounted(metrics: dict, expected: Expected) -> int:
    """The runner's counters of focus ends (with coupons, none above the threshold, a dead
    letter of the focus path) never count more than there were; returns how many they count
    fewer. That every focus event ended is judged by what Kafka shows, exactly: the outputs,
    and the group's commits (``inputs`` committed to their end, see ``wait_for_commits``).
    Beam's counters on Prism were seen one short in about 6,000 focus events whose outputs
    and commits were exact (docs/operations.md#which-figures-are-exact)."""
    assert metrics.get('selection.no_coupon_above_threshold', 0) <= expected.no_coupon
    assert focus_ends(metrics) <= expected.focus_count
    return expected.focus_count - focus_ends(metrics)


def assert_counted(metrics: dict, name: str, happened: int) -> None:
    """A Beam counter of something known (from the outputs, a stand-in's own count) to have
    happened ``happened`` times never counts more. Counters are best effort: Prism 2.73 was
    seen to lose updates (docs/operations.md#which-figures-are-exact)."""
    counted = metrics.get(name, 0)
    assert counted <= happened, f'{name} counted {counted}, more than the {happened} that happened'


def inputs(topics: dict[str, str]) -> list[str]:
    """The pipeline's input topics."""
    return [topics['entry'], topics['focus']]


def wait_for_focus_ends(metrics_file: Path, expected: Expected, timeout_s: float = 30) -> None:
    """Waits until the pipeline's reported counters have caught up with every focus event:
    the runner's metrics can trail the outputs by a report or two."""
    deadline = time.monotonic() + timeout_s
    while (
        focus_ends(read_metrics(metrics_file)) < expected.focus_count
        and time.monotonic() < deadline
    ):
        time.sleep(1)


def uncommitted(bootstrap: str, group: str, topics: list[str]) -> dict[TopicPartition, int]:
    """Per partition of ``topics``, how many offsets ``group`` has not committed yet."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, number)
            for topic in topics
            for number in consumer.partitions_for_topic(topic)
        ]
        ends = consumer.end_offsets(partitions)
        behind = {tp: ends[tp] - (consumer.committed(tp) or 0) for tp in partitions}
        return {tp: count for tp, count in behind.items() if count}
    finally:
        consumer.close()


def wait_for_commits(
    bootstrap: str, group: str, topics: list[str], timeout_s: float = 30
) -> dict[TopicPartition, int]:
    """What is still uncommitted once every offset is, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (left := uncommitted(bootstrap, group, topics)) and time.monotonic() < deadline:
        time.sleep(1)
    return left


def produce_and_read(
    bootstrap: str, topics: dict[str, str], messages: list[Message], model: IndependentModel
) -> tuple[Sent, Expected, list[dict]]:
    """Produces ``messages`` to a running pipeline; returns them with their positions, the
    expected outcome, and the prediction results once that many came."""
    sent = produce(bootstrap, topics, messages)
    expected = expected_outcome(model, sent)
    written = read_all(
        bootstrap, topics['predictions'], len(expected.predictions), OUTPUT_TIMEOUT_S
    )
    return sent, expected, written


def assert_none_lost(
    expected: Expected, written: list[dict], letters: list[dict], left: dict
) -> dict[str, int]:
    """Every expected prediction and dead letter written and every input offset committed
    (after a restart or a recovery); returns the repeats: focus events whose results were
    written again, and duplicate prediction results."""
    got = [as_prediction(m) for m in written]
    assert set(got) == expected.predictions, 'predictions lost'
    assert {as_dead_letter(m) for m in letters} == expected.dead_letters
    assert left == {}, 'input offsets left uncommitted'
    per_focus = collections.Counter(m['focus_event_id'] for m in written)
    expected_per_focus = collections.Counter(p[0] for p in expected.predictions)
    repeated = [f for f, n in per_focus.items() if n > expected_per_focus[f]]
    return {
        'focus_events': expected.focus_count,
        'focus_events_repeated': len(repeated),
        'duplicate_predictions': len(got) - len(set(got)),
    }


@dataclasses.dataclass(frozen=True)
class ScenarioRun:
    """What one run of the fixed scenario produced, expected and got."""

    sent: Sent
    expected: Expected
    written: list[dict]
    letters: list[dict]
    metrics: dict
    start_up_s: float
    uncommitted: dict[TopicPartition, int]


def run_fixed_scenario(
    kafka,
    services,
    topics: dict[str, str],
    tmp_path: Path,
    runner_args: Sequence[str] = DIRECT_RUNNER,
    **settings: str,
) -> ScenarioRun:
    """``python -m pipeline`` (with ``runner_args``, and ``settings`` in its environment) on
    the fixed scenario: the early focus events, 2 s later the main wave; then both output
    topics, and what the group left uncommitted once the outputs were complete."""
    scenario, metrics_file = Scenario(), tmp_path / 'metrics.json'
    env = {**pipeline_environment(kafka, services, topics, metrics_file), **settings}
    bootstrap = kafka.bootstrap_servers
    started = time.monotonic()
    with running_pipeline(env, tmp_path / 'pipeline.log', runner_args):
        start_up_s = time.monotonic() - started
        sent = produce(bootstrap, topics, scenario.before_entries())
        time.sleep(2)  # the early focus events are scored before their entry comes
        sent += produce(bootstrap, topics, scenario.main_wave())
        expected = expected_outcome(IndependentModel(services.db_path), sent)
        written = read_all(
            bootstrap, topics['predictions'], len(expected.predictions), OUTPUT_TIMEOUT_S
        )
        letters = read_all(bootstrap, topics['deadletters'], len(expected.dead_letters), 30)
        left = wait_for_commits(bootstrap, env['GROUP_ID'], [topics['entry'], topics['focus']])
        wait_for_focus_ends(metrics_file, expected)
        time.sleep(2)  # one more metrics report
    return ScenarioRun(
        sent, expected, written, letters, read_metrics(metrics_file), start_up_s, left
    )
