"""The whole pipeline on --runner=DirectRunner against the real broker and stand-ins.

A fixed scenario (225 customers entering and stopping in departments, some
focus events ahead of their entry, some customers unknown to the central,
one unknown department, bad input of every class) is produced to Kafka while
the pipeline runs; the prediction and dead-letter topics must then hold
exactly the messages computed independently from the central's database and
the scorer's weights.
"""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.integration.harness import pipeline_environment, read_metrics, running_pipeline
from tests.integration.scenario import IndependentModel, Message, Scenario

pytestmark = pytest.mark.integration
OUTPUT_TIMEOUT_S = 180


def produce(bootstrap: str, topics: dict[str, str], messages: list[Message]) -> list[tuple[Message, str]]:
  """Sends the messages; returns each with its position 'topic/partition/offset'."""
  producer = KafkaProducer(bootstrap_servers=bootstrap, acks='all')
  futures = [(m, producer.send(topics[m.topic_kind], key=m.key, value=m.value)) for m in messages]
  producer.flush()
  sent = []
  for message, future in futures:
    meta = future.get()
    sent.append((message, f'{meta.topic}/{meta.partition}/{meta.offset}'))
  producer.close()
  return sent


def expected_outputs(model: IndependentModel, sent: list[tuple[Message, str]]):
  predictions, dead_letters, no_coupon = set(), set(), 0
  for message, position in sent:
    if message.kind == 'focus' and not model.has_department(message.department_id):
      dead_letters.add(('unknown_department', position))
    elif message.kind == 'focus':
      best = model.best_coupons(message.customer_id, message.department_id)
      no_coupon += not best
      predictions |= {(position, message.customer_id, coupon, p, message.event_timestamp)
                      for coupon, p in best}
    elif message.kind != 'entry':
      dead_letters.add((message.kind, position))
  return predictions, dead_letters, no_coupon


def read_all(bootstrap: str, topic: str, count: int, timeout_s: float) -> list[dict]:
  """Reads the topic until ``count`` messages came, then 3 s more for extras."""
  consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset='earliest',
                           consumer_timeout_ms=1000)
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
  return (message['focus_event_id'], payload['customer_id'], payload['coupon_id'],
          round(payload['prediction'], 6), message['event_timestamp'])


def test_scenario_ends_as_exactly_the_expected_predictions_and_dead_letters(
    kafka, services, topics, tmp_path: Path):
  scenario = Scenario()
  model = IndependentModel(services.db_path)
  metrics_file = tmp_path / 'metrics.json'
  env = pipeline_environment(kafka, services, topics, metrics_file)
  bootstrap = kafka.bootstrap_servers

  with running_pipeline(env, tmp_path / 'pipeline.log'):
    sent = produce(bootstrap, topics, scenario.before_entries())
    time.sleep(2)  # the early focus events wait in their session for the entry
    sent += produce(bootstrap, topics, scenario.main_wave())
    predictions, dead_letters, no_coupon = expected_outputs(model, sent)

    written = read_all(bootstrap, topics['predictions'], len(predictions), OUTPUT_TIMEOUT_S)
    letters = read_all(bootstrap, topics['deadletters'], len(dead_letters), 30)
    time.sleep(2)  # one more metrics report

  got = [as_prediction(m) for m in written]
  assert len(got) == len(set(got)), 'duplicate prediction results'
  assert set(got) == predictions
  assert all(m['key'] == str(m['payload']['customer_id']).encode() for m in written)
  assert all(m['event_type'] == 'prediction result' for m in written)

  got_letters = {(m['reason'], f"{m['source_topic']}/{m['source_partition']}/{m['source_offset']}")
                 for m in letters}
  assert got_letters == dead_letters
  assert len(letters) == len(dead_letters)
  originals = {message.value for message, _ in sent if message.kind not in ('entry', 'focus')}
  assert {base64.b64decode(m['original_base64']) for m in letters
          if m['reason'] != 'unknown_department'} == originals

  metrics = read_metrics(metrics_file)
  focus_count = sum(1 for m, _ in sent if m.kind == 'focus')
  assert metrics['selection.no_coupon_above_threshold'] == no_coupon
  assert (metrics['selection.focus_with_coupons'] + no_coupon
          + metrics['dead_letters.unknown_department']) == focus_count
  assert metrics['contexts.unknown_on_entry'] == len(scenario.unknown)
  # Whether an early focus event waits depends on timing; every one that waited left once.
  assert metrics['sessions.focus_buffered'] == (metrics['sessions.focus_released']
                                                + metrics['sessions.focus_timed_out'])
  assert metrics['sessions.focus_timed_out'] >= len(scenario.never_entered)
  assert metrics['predictions.written'] == len(predictions)
