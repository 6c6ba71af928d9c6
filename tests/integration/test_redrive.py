"""python -m pipeline.replay.redrive against the real broker and stand-ins: the live pipeline
scores a wave of store traffic while its scorer is unreachable, so every focus event ends as a
``scoring_failed`` dead letter; the re-drive then publishes exactly the predictions those focus
events should have had, a second re-drive of the same range publishes none, and sources that
retention deleted are reported, not re-driven.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaAdminClient, TopicPartition

from tests.integration.harness import pipeline_environment, run_job_command, running_pipeline
from tests.integration.outcomes import (
    Expected,
    as_dead_letter,
    as_prediction,
    expected_outcome,
    iso,
    new_topics,
    produce,
    read_all,
)
from tests.integration.scenario import IndependentModel, Scenario

pytestmark = pytest.mark.integration

UNREACHABLE_SCORER = 'http://127.0.0.1:9/v1/models/coupon:predict'


@dataclasses.dataclass(frozen=True)
class Outage:
    """A wave scored while the scorer was unreachable: every focus event dead-lettered."""

    env: dict[str, str]
    topics: dict[str, str]
    expected: Expected
    focus_positions: frozenset
    range_flags: tuple[str, str]


@pytest.fixture(scope='module')
def outage(kafka, services, tmp_path_factory) -> Outage:
    topics = new_topics(kafka, 'entry', 'focus', 'predictions', 'deadletters')
    tmp = tmp_path_factory.mktemp('outage')
    env = pipeline_environment(kafka, services, topics, tmp / 'metrics.json')
    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    down = {**env, 'COUPON_SCORER_URL': UNREACHABLE_SCORER, 'SCORER_RETRY_SECONDS': '1'}
    with running_pipeline(down, tmp / 'pipeline.log'):
        sent = produce(kafka.bootstrap_servers, topics, Scenario().small_wave(20))
        focus_positions = frozenset(p for m, p in sent if m.kind == 'focus')
        letters = read_all(
            kafka.bootstrap_servers, topics['deadletters'], len(focus_positions), 120
        )
    assert {as_dead_letter(m) for m in letters} == {('scoring_failed', p) for p in focus_positions}
    ended = datetime.now(timezone.utc) + timedelta(seconds=1)
    expected = expected_outcome(IndependentModel(services.db_path), sent)
    flags = (f'--replay_from={iso(started)}', f'--replay_to={iso(ended)}')
    return Outage(env, topics, expected, focus_positions, flags)


def redrive(env: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    return run_job_command('pipeline.replay.redrive', env, *flags)


def summary_of(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_redrive_publishes_the_missing_coupons_once(outage, kafka):
    first = summary_of(redrive(outage.env, *outage.range_flags))
    focus_count = len(outage.focus_positions)
    with_coupons = focus_count - outage.expected.no_coupon
    assert first['dead_letters_in_range'] == {'scoring_failed': focus_count}
    assert first['re_driven_focus_events'] == focus_count
    assert first['focus_events_published_before'] == 0
    assert first['focus_events_with_coupons_now'] == with_coupons
    assert first['prediction_results_published'] == len(outage.expected.predictions)
    written = read_all(
        kafka.bootstrap_servers, outage.topics['predictions'], len(outage.expected.predictions), 60
    )
    assert sorted(as_prediction(m) for m in written) == sorted(outage.expected.predictions)

    second = summary_of(redrive(outage.env, *outage.range_flags))
    assert second['focus_events_published_before'] == with_coupons
    assert second['re_driven_focus_events'] == focus_count - with_coupons  # none above 0.2
    assert second['prediction_results_published'] == 0
    again = read_all(kafka.bootstrap_servers, outage.topics['predictions'], len(written), 10)
    assert len(again) == len(written)

    deleted = TopicPartition(outage.topics['focus'], 0)
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    admin.delete_records({deleted: -1})  # retention, at once: everything before the end
    admin.close()
    third = summary_of(redrive(outage.env, *outage.range_flags))
    gone = sorted(p for p in outage.focus_positions if p.startswith(f'{deleted.topic}/0/'))
    assert gone and third['deleted_by_retention'] == gone
    assert third['prediction_results_published'] == 0


def test_a_redrive_against_a_scorer_that_is_down_is_refused(outage):
    done = redrive({**outage.env, 'COUPON_SCORER_URL': UNREACHABLE_SCORER}, *outage.range_flags)
    assert done.returncode == 4, done.stderr
    assert 'the scorer is down' in done.stderr


def test_a_range_without_dead_letters_is_nothing_to_do(outage):
    done = redrive(
        outage.env, '--replay_from=2001-01-01T00:00:00Z', '--replay_to=2001-01-02T00:00:00Z'
    )
    assert done.returncode == 3, done.stderr
    assert 'no dead letter in' in done.stderr


def test_replay_flags_are_refused_by_name(outage, tmp_path):
    done = redrive(outage.env, *outage.range_flags, f'--output_dir={tmp_path / "x"}')
    assert done.returncode == 2
    assert '--output_dir is a flag of python -m pipeline.replay' in done.stderr
