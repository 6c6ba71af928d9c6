"""One group, one reader: two ``python -m pipeline`` with one GROUP_ID (pipeline/lease.py).

The first one reads; the second stands by, names the first, and publishes nothing until the
first one stops (SIGTERM: after its drain) or dies (SIGKILL: after LEASE_TIMEOUT_SECONDS).
Every focus event of before and after the handover has its predictions; repeats after a
SIGKILL (at-least-once, the same focus_event_id) are counted, after a drain there are none.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest
from kafka import KafkaAdminClient

from tests.integration.harness import (
    pipeline_environment,
    start_pipeline,
    stop_pipeline,
    wait_for_log,
)
from tests.integration.outcomes import (
    OUTPUT_TIMEOUT_S,
    Sent,
    as_prediction,
    expected_outcome,
    produce,
    read_all,
    wait_for_commits,
)
from tests.integration.scenario import IndependentModel, Scenario

pytestmark = pytest.mark.integration
FIRST_WAVE = Scenario(known=tuple(range(1, 41)))
SECOND_WAVE = Scenario(known=tuple(range(41, 81)))
THIRD_WAVE = Scenario(known=tuple(range(81, 121)))
CUSTOMERS_PER_WAVE = 40


@dataclasses.dataclass
class Pair:
    """The active process and the standby, their logs, and the environment they share."""

    env: dict[str, str]
    active: subprocess.Popen
    active_log: Path
    standby: subprocess.Popen
    standby_log: Path


@contextlib.contextmanager
def active_and_standby(kafka, services, topics, tmp_path: Path) -> Iterator[Pair]:
    """Process A reading, then process B with the same environment standing by; both are
    stopped (SIGINT, else SIGKILL) when the block ends."""
    env = pipeline_environment(kafka, services, topics, tmp_path / 'metrics-a.json')
    active_log, standby_log = tmp_path / 'a.log', tmp_path / 'b.log'
    active = start_pipeline(env, active_log)
    standby = None
    try:
        standby = start_pipeline(
            {**env, 'METRICS_FILE': str(tmp_path / 'metrics-b.json')},
            standby_log,
            ready='standing by',
        )
        yield Pair(env, active, active_log, standby, standby_log)
    finally:
        for process in (active, standby):
            if process is not None and process.poll() is None:
                stop_pipeline(process)


def logged_at(log: Path, text: str) -> float:
    """The time (seconds since the epoch) of the first log line with ``text``."""
    line = next(line for line in log.read_text().splitlines() if text in line)
    stamp = datetime.strptime(line[:23], '%Y-%m-%d %H:%M:%S,%f')
    return stamp.timestamp()


def lease_group_members(bootstrap: str, group_id: str) -> dict[str, int]:
    """What an operator's describe shows: each member of the lease group by client id, with
    the number of partitions it holds."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (group,) = admin.describe_consumer_groups([f'{group_id}.lease'])
    finally:
        admin.close()
    return {
        member.client_id: sum(len(p) for _, p in member.member_assignment.assignment)
        for member in group.members
    }


def assert_standby_names_the_active_one(pair: Pair) -> None:
    holder = re.search(r'holding the lease of group \S+ as (\S+)', pair.active_log.read_text())
    assert holder and holder.group(1).endswith(f'-{pair.active.pid}')
    standing_by = next(
        line for line in pair.standby_log.read_text().splitlines() if 'standing by' in line
    )
    assert f'is read by {holder.group(1)};' in standing_by
    assert 'pipeline started' not in pair.standby_log.read_text()
    standby = re.search(r'this process \((\S+)\)', standing_by).group(1)
    assert lease_group_members(pair.env['BOOTSTRAP_SERVERS'], pair.env['GROUP_ID']) == {
        holder.group(1): 6,  # both topics' 3 partitions
        standby: 0,
    }


@dataclasses.dataclass(frozen=True)
class Published:
    """What the prediction topic holds against what ``sent`` must have produced."""

    lost: int
    repeated_results: int
    repeated_focus_events: int


def published(kafka, services, topics, sent: Sent) -> Published:
    expected = expected_outcome(IndependentModel(services.db_path), sent)
    written = read_all(
        kafka.bootstrap_servers, topics['predictions'], len(expected.predictions), OUTPUT_TIMEOUT_S
    )
    got = [as_prediction(message) for message in written]
    counts = collections.Counter(got)
    assert set(got) <= expected.predictions, 'predictions that no focus event asked for'
    return Published(
        lost=len(expected.predictions - set(got)),
        repeated_results=sum(n - 1 for n in counts.values()),
        repeated_focus_events=len({p[0] for p, n in counts.items() if n > 1}),
    )


def test_a_second_process_stands_by_reads_nothing_and_takes_over_when_the_first_is_killed(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    bootstrap = kafka.bootstrap_servers
    with active_and_standby(kafka, services, topics, tmp_path) as pair:
        assert_standby_names_the_active_one(pair)

        sent = produce(bootstrap, topics, FIRST_WAVE.small_wave(CUSTOMERS_PER_WAVE))
        both_live = published(kafka, services, topics, sent)
        assert both_live == Published(0, 0, 0), 'with both processes up'

        sent += produce(bootstrap, topics, SECOND_WAVE.small_wave(CUSTOMERS_PER_WAVE))
        killed_at = time.time()  # with the second wave in flight
        stop_pipeline(pair.active, signal.SIGKILL)
        sent += produce(bootstrap, topics, THIRD_WAVE.small_wave(CUSTOMERS_PER_WAVE))
        wait_for_log(pair.standby_log, 'pipeline reading', pair.standby, timeout_s=90, seen=0)

        after_kill = published(kafka, services, topics, sent)
        left = wait_for_commits(bootstrap, pair.env['GROUP_ID'], [topics['entry'], topics['focus']])

    lease_s = logged_at(pair.standby_log, 'holding the lease') - killed_at
    reading_s = logged_at(pair.standby_log, 'pipeline reading') - killed_at
    fault_figures.update(
        lease_after_kill_s=round(lease_s, 1),
        takeover_s=round(reading_s, 1),
        lost_predictions=after_kill.lost,
        repeated_results=after_kill.repeated_results,
        repeated_focus_events=after_kill.repeated_focus_events,
    )
    assert after_kill.lost == 0, f'{after_kill.lost} predictions lost'
    assert not left, f'offsets never committed: {left}'
    assert reading_s < 60


def test_a_graceful_stop_hands_the_lease_over_after_the_drain_and_repeats_nothing(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    """A third process stopped while standing by exits 0 without starting; then A's SIGTERM:
    its drain, its release, and only then B's lease."""
    bootstrap = kafka.bootstrap_servers
    with active_and_standby(kafka, services, topics, tmp_path) as pair:
        third_log = tmp_path / 'c.log'
        third = start_pipeline(pair.env, third_log, ready='standing by')
        stop_pipeline(third, signal.SIGTERM)
        assert third.returncode == 0
        assert 'stopped while standing by (SIGTERM)' in third_log.read_text()
        assert 'pipeline started' not in third_log.read_text()

        sent = produce(bootstrap, topics, FIRST_WAVE.small_wave(CUSTOMERS_PER_WAVE))
        time.sleep(1)  # some of it in flight
        stopped_at = time.time()
        stop_pipeline(pair.active, signal.SIGTERM)
        assert pair.active.returncode == 0
        sent += produce(bootstrap, topics, SECOND_WAVE.small_wave(CUSTOMERS_PER_WAVE))
        wait_for_log(pair.standby_log, 'pipeline reading', pair.standby, timeout_s=90, seen=0)
        handover = published(kafka, services, topics, sent)

    drain = re.search(r'drain (complete|incomplete) after', pair.active_log.read_text())
    drained_at = logged_at(pair.active_log, 'drain complete')
    released_at = logged_at(pair.active_log, 'released the lease')
    lease_at = logged_at(pair.standby_log, 'holding the lease')
    fault_figures.update(
        lease_after_release_s=round(lease_at - released_at, 1),
        lease_after_drain_s=round(lease_at - drained_at, 1),
        takeover_s=round(logged_at(pair.standby_log, 'pipeline reading') - stopped_at, 1),
        repeated_results=handover.repeated_results,
    )
    assert drain and drain.group(1) == 'complete'
    assert drained_at <= released_at <= lease_at, 'the standby took the lease before the drain'
    assert handover == Published(0, 0, 0)


def test_an_active_process_frozen_past_the_lease_timeout_is_fenced_when_it_wakes(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    """SIGSTOP of A's process group (pipeline, Prism) until B reads, then SIGCONT: A finds it
    lost the lease, stops its pipeline and exits 1; B goes on, nothing is lost."""
    bootstrap = kafka.bootstrap_servers
    with active_and_standby(kafka, services, topics, tmp_path) as pair:
        sent = produce(bootstrap, topics, FIRST_WAVE.small_wave(CUSTOMERS_PER_WAVE))
        assert published(kafka, services, topics, sent) == Published(0, 0, 0)

        frozen_at = time.time()
        os.killpg(pair.active.pid, signal.SIGSTOP)
        try:
            wait_for_log(pair.standby_log, 'pipeline reading', pair.standby, timeout_s=90, seen=0)
            sent += produce(bootstrap, topics, SECOND_WAVE.small_wave(CUSTOMERS_PER_WAVE))
        finally:
            os.killpg(pair.active.pid, signal.SIGCONT)
        woke_at = time.time()
        assert pair.active.wait(timeout=60) == 1
        sent += produce(bootstrap, topics, THIRD_WAVE.small_wave(CUSTOMERS_PER_WAVE))
        after = published(kafka, services, topics, sent)

    fault_figures.update(
        takeover_s=round(logged_at(pair.standby_log, 'pipeline reading') - frozen_at, 1),
        fenced_after_waking_s=round(logged_at(pair.active_log, 'lost the lease') - woke_at, 1),
        lost_predictions=after.lost,
        repeated_results=after.repeated_results,
        repeated_focus_events=after.repeated_focus_events,
    )
    assert 'no answer from the group coordinator' in pair.active_log.read_text()
    assert after.lost == 0, f'{after.lost} predictions lost'
