"""The fixed end-to-end scenario with KAFKA_IO=xlang: Java KafkaIO on Prism.

The same scenario and the same exact expected outputs as test_end_to_end.py, through
``python -m pipeline --runner=DirectRunner`` with Beam's cross-language ReadFromKafka /
WriteToKafka: the expansion service started from the launcher jar, the Java SDK harness
in the PROCESS environment. Skipped where the jars (scripts/bootstrap.sh) or Java are
missing. Prints the start-up time, the pipeline's latency figures and how many input
offsets the group had not committed 30 s after the outputs were complete.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.xlang.runtime import missing_runtime
from tests.integration.harness import pipeline_environment, read_metrics, running_pipeline
from tests.integration.outcomes import (as_dead_letter, as_prediction, expected_outcome,
                                        produce, read_all)
from tests.integration.scenario import IndependentModel, Scenario

pytestmark = [pytest.mark.integration, pytest.mark.xlang,
              pytest.mark.skipif(missing_runtime() is not None,
                                 reason=f'xlang runtime: {missing_runtime()}')]
OUTPUT_TIMEOUT_S = 180
COMMIT_TIMEOUT_S = 30


def uncommitted(bootstrap: str, group: str, topics: list[str]) -> dict[TopicPartition, int]:
  """Per partition of ``topics``, how many offsets ``group`` has not committed yet."""
  consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
  try:
    partitions = [TopicPartition(topic, number) for topic in topics
                  for number in consumer.partitions_for_topic(topic)]
    ends = consumer.end_offsets(partitions)
    behind = {tp: ends[tp] - (consumer.committed(tp) or 0) for tp in partitions}
    return {tp: count for tp, count in behind.items() if count}
  finally:
    consumer.close()


def wait_for_commits(bootstrap: str, group: str, topics: list[str]) -> dict[TopicPartition, int]:
  """What is still uncommitted once every offset is, or after COMMIT_TIMEOUT_S."""
  deadline = time.monotonic() + COMMIT_TIMEOUT_S
  while (left := uncommitted(bootstrap, group, topics)) and time.monotonic() < deadline:
    time.sleep(1)
  return left


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
    # KafkaIO commits nothing itself: CommitEndedOffsets commits every ended record. Reported,
    # not asserted: with either connector a partition's commits now and then stop at an
    # early focus event although its predictions were written (under investigation).
    left = wait_for_commits(bootstrap, env['GROUP_ID'], [topics['entry'], topics['focus']])
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
                       p99_ms=metrics['focus_to_prediction_p99_ms'],
                       uncommitted_offsets=sum(left.values()))
