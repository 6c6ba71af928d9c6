"""Stop and resume on Flink: the savepoint of the last stop (pipeline/flink/savepoints.py), and
Flink's stop-with-savepoint through its REST API (FlinkJob), against a stub of that API; and
FlinkJob's reading of the metrics from that API."""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import unquote

import pytest

from pipeline.flink import savepoints
from pipeline.flink.job import FlinkJob, SavepointFailed
from tests.unit.stub_http import StubHttpServer

FLINK = ['--runner=FlinkRunner']


@pytest.fixture(autouse=True)
def checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(savepoints, 'REPO', tmp_path)


def test_the_next_start_of_the_group_resumes_from_the_last_stop():
    assert savepoints.resuming(FLINK, True, 'g') == FLINK
    savepoints.SavepointRecord('g').remember('file:/sp/savepoint-1')
    assert savepoints.resuming(FLINK, True, 'g') == [
        *FLINK,
        '--savepoint_path=file:/sp/savepoint-1',
    ]
    assert savepoints.resuming(FLINK, True, 'other') == FLINK  # another group's
    assert savepoints.resuming(['--runner=DirectRunner'], True, 'g') == ['--runner=DirectRunner']
    assert savepoints.resuming(FLINK, False, 'g') == FLINK  # the Python read's offsets: the group's
    given = [*FLINK, '--savepoint_path=file:/mine']
    assert savepoints.resuming(given, True, 'g') == given
    savepoints.SavepointRecord('g').forget()
    assert savepoints.resuming(FLINK, True, 'g') == FLINK


def overview(state: str) -> dict:
    return {'jobs': [{'jid': 'j1', 'name': 'coupon-scoring-1', 'start-time': 1, 'state': state}]}


def flink_api(savepoint: dict) -> Any:
    polls = []

    def answer(method: str, path: str, body: Optional[Any]) -> tuple[int, Any]:
        if path == '/jobs/overview':
            return 200, overview('RUNNING')
        if method == 'POST' and path == '/jobs/j1/stop':
            assert body == {'targetDirectory': '/sp', 'drain': False}
            return 202, {'request-id': 't1'}
        if path == '/jobs/j1/savepoints/t1':
            polls.append(1)
            if len(polls) < 2:
                return 200, {'status': {'id': 'IN_PROGRESS'}}
            return 200, {'status': {'id': 'COMPLETED'}, 'operation': savepoint}
        return 404, {}

    return answer


def test_stop_with_savepoint_returns_the_location_once_completed():
    with StubHttpServer(flink_api({'location': 'file:/sp/savepoint-j1'})) as api:
        job = FlinkJob(api.base_url, 'coupon-scoring-1')
        assert job.stop_with_savepoint('/sp') == 'file:/sp/savepoint-j1'


def test_a_failed_savepoint_says_why():
    failed = {'failure-cause': {'class': 'CheckpointException', 'stack-trace': 'declined'}}
    with StubHttpServer(flink_api(failed)) as api:
        with pytest.raises(SavepointFailed, match='declined'):
            FlinkJob(api.base_url, 'coupon-scoring-1').stop_with_savepoint('/sp')


def test_the_metrics_are_asked_for_in_groups_flink_takes_and_summed():
    ids = [
        f'[{i}]{{CouponScoring/ScoreCoupons}}.events_focus_read_delay_ms_le_{i}' for i in range(150)
    ]
    asked: list[int] = []

    def answer(method: str, path: str, body: Optional[Any]) -> tuple[int, Any]:
        if path == '/jobs/overview':
            return 200, overview('RUNNING')
        if path == '/jobs/j1':
            return 200, {'vertices': [{'id': 'v1', 'parallelism': 2}]}
        if path == '/jobs/j1/vertices/v1/subtasks/metrics':
            return 200, [{'id': i} for i in ids]
        if path.startswith('/jobs/j1/vertices/v1/subtasks/'):
            if len(path) > 4096:  # what Flink's REST server refuses
                return 404, {}
            names = unquote(path.split('get=', 1)[1]).split(',')
            asked.append(len(names))
            return 200, [{'id': name, 'value': '1'} for name in names]
        return 404, {}

    with StubHttpServer(answer) as api:
        snapshot = FlinkJob(api.base_url, 'coupon-scoring-1').query()

    assert len(asked) > 2 and sum(asked) == 2 * len(ids)  # every id, of both subtasks
    assert sum(snapshot.counters.values()) == 2 * len(ids)
