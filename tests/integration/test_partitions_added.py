"""Partitions added to both input topics while the pipeline runs (transforms.kafka.partitions).

The topics start with 3 partitions; once the pipeline is warm, both grow to 5 with Kafka's
admin API, and entry and focus events are written to partitions 3 and 4 explicitly: a first
wave at once (the pipeline lists the topics every 3 s: it finds most new partitions after
the wave is written, ``found_after_first_wave`` of the figures says how many), a second one
once the first's predictions come. Every focus event of both waves must be scored exactly
once, whatever AUTO_OFFSET_RESET says (a partition found while running is read from its
first offset), the group must commit the new partitions to their end, and the operator's
lag must show them."""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewPartitions

from tests.integration.harness import (
    pipeline_environment,
    read_metrics,
    running_pipeline,
    wait_for_metric,
)
from tests.integration.outcomes import (
    OUTPUT_TIMEOUT_S,
    as_prediction,
    assert_accounted,
    assert_counted,
    expected_outcome,
    produce,
    read_all,
    wait_for_commits,
    wait_for_focus_ends,
)
from tests.integration.scenario import IndependentModel, Message, Scenario

pytestmark = pytest.mark.integration

DISCOVERY_S = 3
NEW_PARTITIONS = (3, 4)
WAVE = 20  # customers per wave


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def add_partitions(bootstrap: str, names: list[str], total: int) -> None:
    """Grows each topic of ``names`` to ``total`` partitions; returns once each has a leader."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_partitions({name: NewPartitions(total) for name in names})
        deadline = time.monotonic() + 30
        while not all(
            len(t['partitions']) == total and all(p['leader'] >= 0 for p in t['partitions'])
            for t in admin.describe_topics(names)
        ):
            assert time.monotonic() < deadline, 'the new partitions got no leader in 30 s'
            time.sleep(0.2)
    finally:
        admin.close()


def on_new_partitions(message: Message) -> int:
    """Partition 3 or 4, by customer."""
    return NEW_PARTITIONS[message.customer_id % len(NEW_PARTITIONS)]


def visits(scenario: Scenario, customers: range) -> list[Message]:
    """The entry, then the focus events, of the known customers numbered ``customers``
    (stamped now)."""
    wanted = set(scenario.known[customers.start : customers.stop])
    return [m for m in scenario.small_wave(customers.stop)[2:] if m.customer_id in wanted]


def first_prediction_from_new_partitions(bootstrap: str, topic: str, timeout_s: float) -> float:
    """Waits for the first prediction of a focus event on a new partition; returns when it
    came (monotonic)."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset='earliest', consumer_timeout_ms=100
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for record in consumer:
                position = json.loads(record.value)['focus_event_id']  # topic/partition/offset
                if int(position.split('/')[1]) in NEW_PARTITIONS:
                    return time.monotonic()
        raise AssertionError(f'no prediction from a new partition after {timeout_s} s')
    finally:
        consumer.close()


def found_at(log_path: Path) -> list[float]:
    """When the pipeline logged each partition it found while running (epoch seconds)."""
    return [
        datetime.strptime(line[:23], '%Y-%m-%d %H:%M:%S,%f').timestamp()
        for line in log_path.read_text().splitlines()
        if 'added: reading it from its first offset' in line
    ]


def consumer_lag(port: int, topic: str, partition: int) -> float | None:
    """The operator's lag of one partition, as /metrics shows it (None: not shown)."""
    text = requests.get(f'http://127.0.0.1:{port}/metrics', timeout=5).text
    line = f'coupon_scoring_consumer_lag{{partition="{partition}",topic="{topic}"}} '
    found = [row[len(line) :] for row in text.splitlines() if row.startswith(line)]
    return float(found[0]) if found else None


def wait_for_lag(port: int, topic: str, partition: int, timeout_s: float = 30) -> float | None:
    """The lag /metrics shows for the partition once it is 0, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (lag := consumer_lag(port, topic, partition)) != 0 and time.monotonic() < deadline:
        time.sleep(1)
    return lag


def committed(bootstrap: str, group: str, partitions: list[TopicPartition]) -> dict:
    """The group's committed offset and the end offset of each partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        ends = consumer.end_offsets(partitions)
        return {tp: (consumer.committed(tp), ends[tp]) for tp in partitions}
    finally:
        consumer.close()


@pytest.mark.parametrize('reset', ['earliest', 'latest'])
def test_partitions_added_while_running_are_read_from_their_first_offset(
    kafka, services, topics, tmp_path: Path, fault_figures: dict, reset: str
):
    scenario, metrics_file, port = Scenario(), tmp_path / 'metrics.json', free_port()
    bootstrap, inputs = kafka.bootstrap_servers, [topics['entry'], topics['focus']]
    env = {
        **pipeline_environment(kafka, services, topics, metrics_file),
        'AUTO_OFFSET_RESET': reset,
        'PARTITION_DISCOVERY_SECONDS': str(DISCOVERY_S),
        'METRICS_PORT': str(port),
    }
    with running_pipeline(env, tmp_path / 'pipeline.log'):
        sent = produce(bootstrap, topics, scenario.warm_up())  # on partitions 0-2
        wait_for_metric(metrics_file, 'selection.focus_with_coupons', 1)

        add_partitions(bootstrap, inputs, 5)
        added_at, added_wall = time.monotonic(), time.time()
        # At once: before the pipeline could have listed the topics again (at most every 3 s).
        sent += produce(bootstrap, topics, visits(scenario, range(0, WAVE)), on_new_partitions)
        first_wave_wall = time.time()
        first_new_at = first_prediction_from_new_partitions(
            bootstrap, topics['predictions'], OUTPUT_TIMEOUT_S
        )
        sent += produce(
            bootstrap, topics, visits(scenario, range(WAVE, 2 * WAVE)), on_new_partitions
        )

        expected = expected_outcome(IndependentModel(services.db_path), sent)
        written = read_all(
            bootstrap, topics['predictions'], len(expected.predictions), OUTPUT_TIMEOUT_S
        )
        left = wait_for_commits(bootstrap, env['GROUP_ID'], inputs)
        lags = {(t, n): wait_for_lag(port, t, n) for t in inputs for n in NEW_PARTITIONS}
        wait_for_focus_ends(metrics_file, expected)
        time.sleep(2)  # one more metrics report

    got = [as_prediction(m) for m in written]
    assert len(got) == len(set(got)), 'duplicate prediction results'
    assert set(got) == expected.predictions
    assert len(got) == len(expected.predictions)
    new = [TopicPartition(t, n) for t in inputs for n in NEW_PARTITIONS]
    marks = committed(bootstrap, env['GROUP_ID'], new)
    assert all(offset == end > 0 for offset, end in marks.values()), marks
    assert left == {}
    assert lags == {key: 0 for key in lags}
    found = found_at(tmp_path / 'pipeline.log')
    assert len(found) == len(new)
    metrics = read_metrics(metrics_file)
    assert_accounted(metrics, expected)
    assert_counted(metrics, 'partitions.added_while_running', len(new))
    fault_figures.update(
        reset=reset,
        new_partition_focus_events=expected.focus_count - 1,
        predictions=len(got),
        added_to_found_s=round(max(found) - added_wall, 1),
        found_after_first_wave=sum(t > first_wave_wall for t in found),
        added_to_first_prediction_s=round(first_new_at - added_at, 1),
    )
