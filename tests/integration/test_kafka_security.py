"""The pipeline against a SASL_SSL broker and stand-ins that demand bearer tokens.

The broker's only client listener is SASL_SSL (SCRAM-SHA-512 over TLS, a
certificate for 127.0.0.1 checked by the clients); the central and the scorer
refuse requests without their own token. A small store scenario must come out
as the predictions computed independently, a wrong password must be refused
by the broker, and none of the three secrets may appear in the pipeline's log
or in any dead letter.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests
from kafka.conn import BrokerConnection

from standins.kafka.broker import KafkaBroker, ScramUser, create_topics
from standins.services import LocalServices
from tests.integration.harness import pipeline_environment, running_pipeline, wait_for_metric
from tests.integration.outcomes import as_prediction, expected_outcome, produce, read_all
from tests.integration.scenario import IndependentModel, Scenario

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
    broker = KafkaBroker(
        port=KAFKA_PORT,
        controller_port=KAFKA_PORT + 1,
        data_dir=data / 'data',
        log_dir=data,
        scram_user=ScramUser(USER, PASSWORD),
    )
    with broker:
        assert broker.started_here, f'a stand-in broker was already running on port {KAFKA_PORT}'
        yield broker


def start_services(local_dir: Path, token: str, monkeypatch: pytest.MonkeyPatch) -> LocalServices:
    """The central and the scorer stand-ins, demanding ``token`` (they read STANDIN_TOKEN)."""
    monkeypatch.setenv('STANDIN_TOKEN', token)
    return LocalServices(
        central_port=0, scorer_port=0, customers=CUSTOMERS, local_dir=local_dir
    ).start()


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


def authenticates(kafka: KafkaBroker, password: str) -> bool:
    """Whether one connection to the SASL_SSL listener gets through TLS and SASL with ``password``."""
    config = {**kafka.client_config(), 'sasl_plain_password': password}
    connection = BrokerConnection('127.0.0.1', kafka.port, socket.AF_INET, **config)
    try:
        return connection.connect_blocking(timeout=10)
    finally:
        connection.close()


def assert_no_secret(where: str, text: str) -> None:
    leaked = [
        name
        for name, secret in zip(('password', 'scorer token', 'central token'), SECRETS)
        if secret in text
    ]
    assert not leaked, f'{", ".join(leaked)} in {where}'


def test_pipeline_runs_on_sasl_ssl_with_tokens_and_leaks_no_secret(
    secure_kafka, secured_services, tmp_path: Path
):
    central, scorer = secured_services
    run = uuid.uuid4().hex[:8]
    topics = {
        kind: f'sec.{run}.{kind}' for kind in ('entry', 'focus', 'predictions', 'deadletters')
    }
    create_topics(
        secure_kafka.bootstrap_servers,
        list(topics.values()),
        client_config=secure_kafka.client_config(),
    )
    env = {
        **pipeline_environment(secure_kafka, central, topics, tmp_path / 'metrics.json'),
        'COUPON_SCORER_URL': scorer.scorer_url,
        'KAFKA_SECURITY_PROTOCOL': 'SASL_SSL',
        'KAFKA_SASL_MECHANISM': 'SCRAM-SHA-512',
        'KAFKA_SASL_USERNAME': USER,
        'KAFKA_SASL_PASSWORD': PASSWORD,
        'KAFKA_SSL_CAFILE': str(secure_kafka.ca_file),
        'SCORER_TOKEN': SCORER_TOKEN,
        'CENTRAL_TOKEN': CENTRAL_TOKEN,
    }
    scenario = Scenario(known=tuple(range(1, 21)), early=(), never_entered=(), unknown=())
    wave = scenario.main_wave()
    log_path = tmp_path / 'pipeline.log'

    with running_pipeline(env, log_path):
        # Entries first, so that every focus event finds its context (sessions are not tested here).
        bootstrap, security = secure_kafka.bootstrap_servers, secure_kafka.client_config()
        sent = produce(bootstrap, topics, [m for m in wave if m.topic_kind == 'entry'], **security)
        wait_for_metric(tmp_path / 'metrics.json', 'contexts.fetched_on_entry', len(scenario.known))
        sent += produce(bootstrap, topics, [m for m in wave if m.topic_kind == 'focus'], **security)
        expected = expected_outcome(IndependentModel(central.db_path), sent).predictions
        written = read_all(
            bootstrap, topics['predictions'], len(expected), OUTPUT_TIMEOUT_S, **security
        )
        letters = read_all(
            bootstrap,
            topics['deadletters'],
            sum(1 for m, _ in sent if m.kind not in ('entry', 'focus')) + 1,
            30,
            **security,
        )

    assert {as_prediction(message) for message in written} == expected
    assert letters, 'the scenario has bad input: dead letters were expected'
    assert_no_secret('the pipeline log', log_path.read_text(errors='replace'))
    for letter in letters:
        assert_no_secret('a dead letter', repr(letter))


def test_broker_refuses_a_wrong_password(secure_kafka):
    assert authenticates(secure_kafka, PASSWORD)
    assert not authenticates(secure_kafka, 'not-the-password')
    assert (
        'invalid credentials with SASL mechanism SCRAM-SHA-512'
        in secure_kafka.log_file.read_text(errors='replace')
    )


def test_stand_ins_refuse_requests_without_their_token(secured_services):
    central, scorer = secured_services

    assert requests.get(f'{central.central_url}/coupons', timeout=5).status_code == 401
    assert requests.post(scorer.scorer_url, json={'instances': []}, timeout=5).status_code == 401
    assert (
        requests.get(
            f'{central.central_url}/coupons',
            timeout=5,
            headers={'Authorization': f'Bearer {SCORER_TOKEN}'},
        ).status_code
        == 401
    )
