"""The pipeline against a SASL_SSL broker and stand-ins that demand bearer tokens.

The broker's only client listener is SASL_SSL (SCRAM-SHA-512 over TLS, a
certificate for 127.0.0.1 checked by the clients); the central and the scorer
refuse requests without their own token. A small store scenario must come out
as the predictions computed independently, a wrong password must be refused
by the broker, and none of the three secrets may appear in the pipeline's log
or in any dead letter.
"""
from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from kafka import KafkaConsumer, KafkaProducer
from kafka.conn import BrokerConnection

from standins.kafka.broker import KafkaBroker, ScramUser, create_topics
from standins.services import LocalServices
from tests.integration.harness import pipeline_environment, running_pipeline, wait_for_metric
from tests.integration.scenario import IndependentModel, Message, Scenario

pytestmark = pytest.mark.integration
KAFKA_PORT = 19492
USER = 'coupon-scoring'
PASSWORD = f'kafka-{uuid.uuid4().hex}'
SCORER_TOKEN = f'scorer-{uuid.uuid4().hex}'
CENTRAL_TOKEN = f'central-{uuid.uuid4().hex}'
SECRETS = (PASSWORD, SCORER_TOKEN, CENTRAL_TOKEN)
CUSTOMERS = 100
OUTPUT_TIMEOUT_S = 90


@pytest.fixture(scope='module')
def secure_kafka(tmp_path_factory) -> Iterator[KafkaBroker]:
  """A broker whose client port takes SASL_SSL only (controller on +1, INTERNAL on +2)."""
  data = tmp_path_factory.mktemp('secure-kafka')
  broker = KafkaBroker(port=KAFKA_PORT, controller_port=KAFKA_PORT + 1, data_dir=data / 'data',
                       log_dir=data, scram_user=ScramUser(USER, PASSWORD))
  with broker:
    assert broker.started_here, f'a stand-in broker was already running on port {KAFKA_PORT}'
    yield broker


def start_services(local_dir: Path, token: str, monkeypatch: pytest.MonkeyPatch) -> LocalServices:
  """The central and the scorer stand-ins, demanding ``token`` (they read STANDIN_TOKEN)."""
  monkeypatch.setenv('STANDIN_TOKEN', token)
  return LocalServices(central_port=0, scorer_port=0, customers=CUSTOMERS,
                       local_dir=local_dir).start()


@pytest.fixture
def secured_services(tmp_path: Path, monkeypatch) -> Iterator[tuple[LocalServices, LocalServices]]:
  """(central's, scorer's): two pairs of stand-ins, so that each token is a different one."""
  central = start_services(tmp_path / 'central', CENTRAL_TOKEN, monkeypatch)
  try:
    scorer = start_services(tmp_path / 'scorer', SCORER_TOKEN, monkeypatch)
    try:
      yield central, scorer
    finally:
      scorer.stop()
  finally:
    central.stop()


def produce(kafka: KafkaBroker, topics: dict[str, str], messages: list[Message]) -> list[tuple[Message, str]]:
  """Sends the messages over SASL_SSL; returns each with its position 'topic/partition/offset'."""
  producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks='all',
                           **kafka.client_config())
  futures = [(m, producer.send(topics[m.topic_kind], key=m.key, value=m.value)) for m in messages]
  producer.flush()
  sent = []
  for message, future in futures:
    meta = future.get()
    sent.append((message, f'{meta.topic}/{meta.partition}/{meta.offset}'))
  producer.close()
  return sent


def read_raw(kafka: KafkaBroker, topic: str, count: int, timeout_s: float) -> list[bytes]:
  """The values of ``topic`` once ``count`` came (or ``timeout_s`` passed), and 3 s more."""
  consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers,
                           auto_offset_reset='earliest', consumer_timeout_ms=1000,
                           **kafka.client_config())
  values: list[bytes] = []
  deadline, settle_until = time.monotonic() + timeout_s, None
  while time.monotonic() < deadline and (settle_until is None or time.monotonic() < settle_until):
    values += [record.value for record in consumer]
    if len(values) >= count and settle_until is None:
      settle_until = time.monotonic() + 3
  consumer.close()
  return values


def expected_predictions(model: IndependentModel, sent: list[tuple[Message, str]]) -> set[tuple]:
  return {(position, message.customer_id, coupon, p)
          for message, position in sent
          if message.kind == 'focus' and model.has_department(message.department_id)
          for coupon, p in model.best_coupons(message.customer_id, message.department_id)}


def as_prediction(message: dict[str, Any]) -> tuple:
  payload = message['payload']
  return (message['focus_event_id'], payload['customer_id'], payload['coupon_id'],
          round(payload['prediction'], 6))


def authenticates(kafka: KafkaBroker, password: str) -> bool:
  """Whether one connection to the SASL_SSL listener gets through TLS and SASL with ``password``."""
  config = {**kafka.client_config(), 'sasl_plain_password': password}
  connection = BrokerConnection('127.0.0.1', kafka.port, socket.AF_INET, **config)
  try:
    return connection.connect_blocking(timeout=10)
  finally:
    connection.close()


def assert_no_secret(where: str, text: str) -> None:
  leaked = [name for name, secret in zip(('password', 'scorer token', 'central token'), SECRETS)
            if secret in text]
  assert not leaked, f'{", ".join(leaked)} in {where}'


def test_pipeline_runs_on_sasl_ssl_with_tokens_and_leaks_no_secret(
    secure_kafka, secured_services, tmp_path: Path):
  central, scorer = secured_services
  run = uuid.uuid4().hex[:8]
  topics = {kind: f'sec.{run}.{kind}' for kind in ('entry', 'focus', 'predictions', 'deadletters')}
  create_topics(secure_kafka.bootstrap_servers, list(topics.values()),
                client_config=secure_kafka.client_config())
  env = {**pipeline_environment(secure_kafka, central, topics, tmp_path / 'metrics.json'),
         'COUPON_SCORER_URL': scorer.scorer_url,
         'KAFKA_SECURITY_PROTOCOL': 'SASL_SSL', 'KAFKA_SASL_MECHANISM': 'SCRAM-SHA-512',
         'KAFKA_SASL_USERNAME': USER, 'KAFKA_SASL_PASSWORD': PASSWORD,
         'KAFKA_SSL_CAFILE': str(secure_kafka.ca_file),
         'SCORER_TOKEN': SCORER_TOKEN, 'CENTRAL_TOKEN': CENTRAL_TOKEN}
  scenario = Scenario(known=tuple(range(1, 21)), early=(), never_entered=(), unknown=())
  wave = scenario.main_wave()
  log_path = tmp_path / 'pipeline.log'

  with running_pipeline(env, log_path):
    # Entries first, so that every focus event finds its context (sessions are not tested here).
    sent = produce(secure_kafka, topics, [m for m in wave if m.topic_kind == 'entry'])
    wait_for_metric(tmp_path / 'metrics.json', 'contexts.fetched_on_entry', len(scenario.known))
    sent += produce(secure_kafka, topics, [m for m in wave if m.topic_kind == 'focus'])
    expected = expected_predictions(IndependentModel(central.db_path), sent)
    written = read_raw(secure_kafka, topics['predictions'], len(expected), OUTPUT_TIMEOUT_S)
    letters = read_raw(secure_kafka, topics['deadletters'],
                       sum(1 for m, _ in sent if m.kind not in ('entry', 'focus')) + 1, 30)

  assert {as_prediction(json.loads(value)) for value in written} == expected
  assert letters, 'the scenario has bad input: dead letters were expected'
  assert_no_secret('the pipeline log', log_path.read_text(errors='replace'))
  for letter in letters:
    assert_no_secret('a dead letter', letter.decode(errors='replace'))


def test_broker_refuses_a_wrong_password(secure_kafka):
  assert authenticates(secure_kafka, PASSWORD)
  assert not authenticates(secure_kafka, 'not-the-password')
  assert ('invalid credentials with SASL mechanism SCRAM-SHA-512'
          in secure_kafka.log_file.read_text(errors='replace'))


def test_stand_ins_refuse_requests_without_their_token(secured_services):
  central, scorer = secured_services

  assert requests.get(f'{central.central_url}/coupons', timeout=5).status_code == 401
  assert requests.post(scorer.scorer_url, json={'instances': []}, timeout=5).status_code == 401
  assert requests.get(f'{central.central_url}/coupons', timeout=5, headers={
      'Authorization': f'Bearer {SCORER_TOKEN}'}).status_code == 401
