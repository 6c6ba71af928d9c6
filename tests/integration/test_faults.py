"""Faults of the outside world, quick cases: the real pipeline, broker and stand-ins.

For the fixed scenario of ``scenario.py``, every valid focus event must end as its
predictions, as a counted "no coupon above the threshold", or as a dead letter with a
reason, and the counts must add up to what was produced. Slow cases (outages of tens of
seconds, restarts): ``test_faults_slow.py``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from standins.services import LocalServices
from tests.integration.conftest import SCENARIO_CUSTOMERS
from tests.integration.harness import (
    pipeline_environment,
    read_metrics,
    running_pipeline,
    wait_for_metric,
)
from tests.integration.outcomes import (
    OUTPUT_TIMEOUT_S,
    Expected,
    as_dead_letter,
    as_prediction,
    assert_accounted,
    assert_counted,
    expected_outcome,
    inputs,
    produce,
    read_all,
    wait_for_commits,
    wait_for_focus_ends,
)
from tests.integration.scenario import IndependentModel, Scenario

pytestmark = pytest.mark.integration


def own_services(tmp_path: Path, scorer_options: tuple[str, ...] = ()) -> LocalServices:
    """Stand-ins of this test alone, so that taking them down disturbs no other test."""
    return LocalServices(
        central_port=0,
        scorer_port=0,
        customers=SCENARIO_CUSTOMERS,
        scorer_options=scorer_options,
        local_dir=tmp_path / 'services',
    )


def assert_outcome(
    kafka, topics: dict[str, str], expected: Expected, metrics_file: Path, group: str
) -> list[dict]:
    """Reads both output topics and checks them against ``expected``; checks that ``group``
    committed every input offset (a record's offset is committed once it has ended, so no
    record is left); then lets the pipeline's counters catch up with every focus event;
    returns the predictions."""
    written = read_all(
        kafka.bootstrap_servers, topics['predictions'], len(expected.predictions), OUTPUT_TIMEOUT_S
    )
    letters = read_all(
        kafka.bootstrap_servers, topics['deadletters'], len(expected.dead_letters), 30
    )
    got = [as_prediction(m) for m in written]
    assert len(got) == len(set(got)), 'duplicate prediction results'
    assert set(got) == expected.predictions
    assert sorted(as_dead_letter(m) for m in letters) == sorted(expected.dead_letters)
    assert wait_for_commits(kafka.bootstrap_servers, group, inputs(topics)) == {}
    wait_for_focus_ends(metrics_file, expected)
    return written


def scorer_metrics(services: LocalServices) -> dict[str, int]:
    return requests.get(services.scorer_url.split('/v1/')[0] + '/metrics', timeout=5).json()


@pytest.fixture
def flaky_scorer(tmp_path: Path) -> Iterator[LocalServices]:
    """A scorer answering 503 to 20% of requests and holding 10% past the client's timeout."""
    options = (
        '--error-rate',
        '0.2',
        '--timeout-rate',
        '0.1',
        '--hang-ms',
        '3000',
        '--fault-seed',
        '42',
    )
    with own_services(tmp_path, options) as services:
        yield services


def test_flaky_scorer_everything_is_scored_in_the_end_and_retries_are_counted(
    kafka, flaky_scorer, topics, tmp_path: Path, fault_figures: dict
):
    scenario, metrics_file = Scenario(), tmp_path / 'metrics.json'
    env = {
        **pipeline_environment(kafka, flaky_scorer, topics, metrics_file),
        'SCORER_TIMEOUT_SECONDS': '1',
    }

    with running_pipeline(env, tmp_path / 'pipeline.log'):
        sent = produce(kafka.bootstrap_servers, topics, scenario.main_wave())
        expected = expected_outcome(IndependentModel(flaky_scorer.db_path), sent)
        assert_outcome(kafka, topics, expected, metrics_file, env['GROUP_ID'])
        time.sleep(2)  # one more metrics report

    metrics, injected = read_metrics(metrics_file), scorer_metrics(flaky_scorer)
    fault_figures['focus_ends_not_counted'] = assert_accounted(metrics, expected)
    assert metrics.get('dead_letters.scoring_failed', 0) == 0
    assert injected['errors_injected'] > 0 and injected['timeouts_injected'] > 0
    assert_counted(metrics, 'scorer.failed_requests_http_5xx', injected['errors_injected'])
    assert_counted(metrics, 'scorer.failed_requests_timeout', injected['timeouts_injected'])
    fault_figures.update(
        scorer_requests=metrics['scorer.requests'],
        errors_503=injected['errors_injected'],
        timeouts=injected['timeouts_injected'],
        p50_ms=metrics['focus_to_prediction_p50_ms'],
        p99_ms=metrics['focus_to_prediction_p99_ms'],
    )


def test_central_down_during_entries_then_back_focus_events_fetch_their_context(
    kafka, topics, tmp_path: Path, fault_figures: dict
):
    scenario, metrics_file = Scenario(), tmp_path / 'metrics.json'
    wave = scenario.main_wave()
    entries = [m for m in wave if m.topic_kind == 'entry']
    with own_services(tmp_path) as services:
        env = {
            **pipeline_environment(kafka, services, topics, metrics_file),
            'CENTRAL_RETRIES': '1',
        }
        with running_pipeline(env, tmp_path / 'pipeline.log'):
            warm = produce(kafka.bootstrap_servers, topics, scenario.warm_up())
            wait_for_metric(metrics_file, 'selection.focus_with_coupons', 1)
            services.stop_service('central')
            down_at = time.monotonic()
            sent = produce(kafka.bootstrap_servers, topics, entries)
            valid_entries = sum(1 for m, _ in sent if m.kind == 'entry')
            wait_for_metric(metrics_file, 'contexts.fetch_failed_on_entry', valid_entries)
            services.start_service('central')
            fault_figures['central_down_s'] = round(time.monotonic() - down_at, 1)
            sent += produce(kafka.bootstrap_servers, topics, [m for m in wave if m not in entries])
            expected = expected_outcome(
                IndependentModel(services.db_path),
                warm + sent,
                entry_dead_letter='context_fetch_failed',
            )
            expected = dataclasses.replace(
                expected,
                dead_letters=expected.dead_letters
                - {('context_fetch_failed', position) for _, position in warm},
            )
            assert_outcome(kafka, topics, expected, metrics_file, env['GROUP_ID'])
            time.sleep(2)  # one more metrics report

    metrics = read_metrics(metrics_file)
    fault_figures['focus_ends_not_counted'] = assert_accounted(metrics, expected)
    assert_counted(metrics, 'dead_letters.context_fetch_failed', valid_entries)
    assert metrics.get('sessions.focus_with_default_context', 0) == 0
    fault_figures.update(
        entries_dead_lettered=valid_entries,
        fetched_for_focus=metrics['contexts.fetched_on_demand'],
        p99_ms=metrics['focus_to_prediction_p99_ms'],
    )
