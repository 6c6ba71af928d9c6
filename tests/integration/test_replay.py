"""python -m pipeline.replay against the real broker and stand-ins: a range whose live results
are known is scored again, with the same settings (the same predictions) and with another
threshold and top K (the ones the independent model gives for them); and every kind of bad
command line ends with its message and exit code, having written nothing.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.integration.harness import pipeline_environment, run_job_command, running_pipeline
from tests.integration.outcomes import (
    Expected,
    as_prediction,
    iso,
    new_topics,
    produce_and_read,
    read_all,
)
from tests.integration.scenario import IndependentModel, Scenario

pytestmark = pytest.mark.integration


@dataclasses.dataclass(frozen=True)
class LiveRun:
    """A range of store traffic the live pipeline scored: its topics, times and outputs."""

    env: dict[str, str]
    topics: dict[str, str]
    sent: list
    expected: Expected
    live: frozenset
    replay_from: str
    replay_to: str


@pytest.fixture(scope='module')
def live_run(kafka, services, tmp_path_factory) -> LiveRun:
    topics = new_topics(kafka, 'entry', 'focus', 'predictions', 'deadletters', 'whatif')
    tmp = tmp_path_factory.mktemp('live')
    env = pipeline_environment(kafka, services, topics, tmp / 'metrics.json')
    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    with running_pipeline(env, tmp / 'pipeline.log'):
        sent, expected, written = produce_and_read(
            kafka.bootstrap_servers,
            topics,
            Scenario().small_wave(30),
            IndependentModel(services.db_path),
        )
    ended = datetime.now(timezone.utc) + timedelta(seconds=1)
    live = frozenset(as_prediction(m) for m in written)
    assert live == expected.predictions  # the live run is the reference
    return LiveRun(env, topics, sent, expected, live, iso(started), iso(ended))


def replay(env: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    return run_job_command('pipeline.replay', env, *flags)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def overall_row(report: str) -> list[str]:
    row = next(line for line in report.splitlines() if line.startswith('| all |'))
    return [cell.strip() for cell in row.strip('|').split('|')]


def test_a_replay_with_the_live_settings_gives_the_live_predictions(live_run, tmp_path):
    out = tmp_path / 'same'
    started = time.monotonic()
    done = replay(
        live_run.env,
        f'--replay_from={live_run.replay_from}',
        f'--replay_to={live_run.replay_to}',
        f'--output_dir={out}',
    )
    took_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    replayed = frozenset(as_prediction(m) for m in read_lines(out / 'predictions.jsonl'))
    assert replayed == live_run.live
    focus_count = live_run.expected.focus_count
    assert len(read_lines(out / 'focus_events.jsonl')) == focus_count
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['focus_events'] == focus_count
    assert summary['dead_letters'] == {}
    assert any('as it answered at' in line for line in summary['about'])
    row = overall_row((out / 'report.md').read_text())
    with_coupons = focus_count - live_run.expected.no_coupon
    assert row[1:6] == [
        str(focus_count),
        str(with_coupons),
        str(with_coupons),
        str(focus_count),
        '1.000',
    ]
    assert row[-1] == '0.000'  # KS distance: the same predictions
    assert (out / 'report.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    print(f'replay of {focus_count} focus events: {took_s:.1f} s')


def test_a_replay_with_another_threshold_and_top_k_gives_their_coupons(
    live_run, services, kafka, tmp_path
):
    out = tmp_path / 'strict'
    done = replay(
        live_run.env,
        f'--replay_from={live_run.replay_from}',
        f'--replay_to={live_run.replay_to}',
        f'--output_dir={out}',
        '--prediction_threshold=0.6',
        '--top_k=1',
        f'--output_topic={live_run.topics["whatif"]}',
    )
    assert done.returncode == 0, done.stderr[-3000:]
    model = IndependentModel(services.db_path)
    expected = {
        (position, m.customer_id, coupon, p, m.event_timestamp)
        for m, position in live_run.sent
        if m.kind == 'focus'
        for coupon, p in model.best_coupons(m.customer_id, m.department_id, threshold=0.6, top_k=1)
    }
    replayed = frozenset(as_prediction(m) for m in read_lines(out / 'predictions.jsonl'))
    assert replayed == expected
    assert replayed != live_run.live
    on_topic = read_all(kafka.bootstrap_servers, live_run.topics['whatif'], len(expected), 60)
    assert frozenset(as_prediction(m) for m in on_topic) == expected
    row = overall_row((out / 'report.md').read_text())
    focuses_with_one = len({p[0] for p in expected})
    assert row[3] == str(focuses_with_one)


def test_nothing_is_written_for_a_range_without_records(live_run, tmp_path):
    out = tmp_path / 'empty'
    done = replay(
        live_run.env,
        '--replay_from=2001-01-01T10:00:00Z',
        '--replay_to=2001-01-01T14:00:00Z',
        f'--output_dir={out}',
    )
    assert done.returncode == 3, done.stderr
    assert 'no record in' in done.stderr
    assert not out.exists()


DAY = ['--replay_from=2026-01-01T00:00:00Z', '--replay_to=2026-01-02T00:00:00Z']


@pytest.mark.parametrize(
    'flags, message',
    [
        (['--replay_to=2026-01-01T00:00:00Z'], '--replay_from is required'),
        (['--replay_from=yesterday', '--replay_to=2026-01-01T00:00:00Z'], 'not an ISO-8601'),
        (['--replay_from=2999-01-01T00:00:00Z', '--replay_to=2999-01-02T00:00:00Z'], 'future'),
        (['--replay_from=2026-01-02T00:00:00Z', '--replay_to=2026-01-01T00:00:00Z'], 'after'),
        ([*DAY, '--prediction_treshold=0.3'], 'unknown flag(s): --prediction_treshold'),
        ([*DAY, '--top_k=0'], 'TOP_K (--top_k)'),
    ],
)
def test_a_bad_command_line_is_refused_by_name(live_run, tmp_path, flags, message):
    out = tmp_path / 'refused'
    done = replay(live_run.env, *flags, f'--output_dir={out}')
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not out.exists()


def test_an_output_directory_in_use_is_refused(live_run, tmp_path):
    (tmp_path / 'earlier.jsonl').write_text('{}')
    done = replay(live_run.env, *DAY, f'--output_dir={tmp_path}')
    assert done.returncode == 2, done.stderr
    assert 'not an empty directory' in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ['earlier.jsonl']


def test_the_live_prediction_topic_is_refused_as_output(live_run, tmp_path):
    out = tmp_path / 'live'
    done = replay(
        live_run.env,
        f'--replay_from={live_run.replay_from}',
        f'--replay_to={live_run.replay_to}',
        f'--output_dir={out}',
        f'--output_topic={live_run.topics["predictions"]}',
    )
    assert done.returncode == 2
    assert '--to_live_topic' in done.stderr
    assert not out.exists()


def test_a_scorer_that_is_down_is_refused_before_anything_is_written(live_run, tmp_path):
    out = tmp_path / 'down'
    done = replay(
        {**live_run.env, 'COUPON_SCORER_URL': 'http://127.0.0.1:9/v1/models/coupon:predict'},
        f'--replay_from={live_run.replay_from}',
        f'--replay_to={live_run.replay_to}',
        f'--output_dir={out}',
    )
    assert done.returncode == 4, done.stderr
    assert 'the scorer is down' in done.stderr
    assert not out.exists()
