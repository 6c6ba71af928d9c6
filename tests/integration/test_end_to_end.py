"""The whole pipeline on --runner=DirectRunner against the real broker and stand-ins.

A fixed scenario (225 customers entering and stopping in departments, some
focus events ahead of their entry, some customers unknown to the central,
one unknown department, and the bad-input corpus of tests/corpus.py among
them) is produced to Kafka while
the pipeline runs; the prediction and dead-letter topics must then hold
exactly the messages computed independently from the central's database and
the scorer's weights.
"""
from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from tests.integration.harness import pipeline_environment, read_metrics, running_pipeline
from tests.integration.outcomes import (as_dead_letter, as_prediction, assert_accounted,
                                        expected_outcome, produce, read_all)
from tests.integration.scenario import IndependentModel, Scenario

pytestmark = pytest.mark.integration
OUTPUT_TIMEOUT_S = 180


def original_bytes(letter: dict) -> bytes | None:
  encoded = letter['original_base64']
  return None if encoded is None else base64.b64decode(encoded)


def test_scenario_ends_as_exactly_the_expected_predictions_and_dead_letters(
    kafka, services, topics, tmp_path: Path, fault_figures: dict):
  scenario = Scenario()
  model = IndependentModel(services.db_path)
  metrics_file = tmp_path / 'metrics.json'
  env = pipeline_environment(kafka, services, topics, metrics_file)
  bootstrap = kafka.bootstrap_servers

  with running_pipeline(env, tmp_path / 'pipeline.log'):
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
  assert all(m['key'] == str(m['payload']['customer_id']).encode() for m in written)
  assert all(m['event_type'] == 'prediction result' for m in written)

  assert {as_dead_letter(m) for m in letters} == expected.dead_letters
  assert len(letters) == len(expected.dead_letters)
  originals = {position: message.value for message, position in sent
               if message.kind not in ('entry', 'focus')}
  assert {as_dead_letter(m)[1]: original_bytes(m) for m in letters
          if m['reason'] != 'unknown_department'} == originals

  metrics = read_metrics(metrics_file)
  assert_accounted(metrics, expected)
  assert metrics['contexts.unknown_on_entry'] == len(scenario.unknown)
  # A focus event with no context in its session fetches it at once: the early customers',
  # the ones who never entered, and any that came before their entry's context.
  assert metrics['contexts.fetched_on_demand'] >= len(scenario.early) + len(scenario.never_entered)
  assert (metrics['sessions.focus_enriched_from_state'] + metrics['contexts.fetched_on_demand']
          == expected.focus_count)
  assert metrics['predictions.written'] == len(expected.predictions)
  fault_figures.update(no_fault=True, p50_ms=metrics['focus_to_prediction_p50_ms'],
                       p99_ms=metrics['focus_to_prediction_p99_ms'])
