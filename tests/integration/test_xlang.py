"""The fixed end-to-end scenario with KAFKA_IO=xlang: Java KafkaIO on Prism.

The same scenario and the same exact expected outputs as test_end_to_end.py, through
``python -m pipeline --runner=DirectRunner`` with Beam's cross-language ReadFromKafka /
WriteToKafka: the expansion service started from the launcher jar, the Java SDK harness
in the PROCESS environment. Skipped where the jars (scripts/bootstrap.sh) or Java are
missing. Prints the start-up time and the pipeline's latency figures.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.xlang.runtime import missing_runtime
from tests.integration.harness import pipeline_environment, read_metrics, running_pipeline
from tests.integration.outcomes import (as_dead_letter, as_prediction, expected_outcome,
                                        produce, read_all)
from tests.integration.scenario import IndependentModel, Scenario

pytestmark = [pytest.mark.integration, pytest.mark.xlang,
              pytest.mark.skipif(missing_runtime() is not None,
                                 reason=f'xlang runtime: {missing_runtime()}')]
OUTPUT_TIMEOUT_S = 180


def test_xlang_scenario_ends_as_exactly_the_expected_predictions_and_dead_letters(
    kafka, services, topics, tmp_path: Path, fault_figures: dict):
  scenario = Scenario()
  model = IndependentModel(services.db_path)
  metrics_file = tmp_path / 'metrics.json'
  env = {**pipeline_environment(kafka, services, topics, metrics_file), 'KAFKA_IO': 'xlang'}
  bootstrap = kafka.bootstrap_servers

  started = time.monotonic()
  with running_pipeline(env, tmp_path / 'pipeline.log'):
    start_up_s = time.monotonic() - started
    sent = produce(bootstrap, topics, scenario.before_entries())
    time.sleep(2)  # the early focus events are scored before their entry comes
    sent += produce(bootstrap, topics, scenario.main_wave())
    expected = expected_outcome(model, sent)

    written = read_all(bootstrap, topics['predictions'], len(expected.predictions),
                       OUTPUT_TIMEOUT_S)
    letters = read_all(bootstrap, topics['deadletters'], len(expected.dead_letters), 30)
    time.sleep(2)  # one more metrics report

  got = [as_prediction(m) for m in written]
  assert len(got) == len(set(got)), 'duplicate prediction results'
  assert set(got) == expected.predictions
  assert {as_dead_letter(m) for m in letters} == expected.dead_letters
  assert len(letters) == len(expected.dead_letters)
  metrics = read_metrics(metrics_file)
  assert metrics['predictions.written'] == len(expected.predictions)
  fault_figures.update(xlang_start_up_s=round(start_up_s, 1),
                       p50_ms=metrics['focus_to_prediction_p50_ms'],
                       p99_ms=metrics['focus_to_prediction_p99_ms'])
