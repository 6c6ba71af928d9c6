"""Secrets (the Kafka password, the scorer's and the central's tokens): sent where they
belong, and never in a repr, an error message, a log line or a dead letter's detail."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pickle
import threading
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Iterator

import pytest
import requests
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.__main__ import SecretMaskingFilter, cannot_start_message
from pipeline.options import SETTINGS, ConfigError, Settings, resolve_settings
from pipeline.wiring import central_config, kafka_connection, scorer_config
from standins.http import JsonRequestHandler, Payload, Response
from tests.unit.builders import context, coupon, enriched, focus
from tests.unit.test_options import REQUIRED_ENV
from transforms.central import CentralClient, CentralConfig, CentralUnavailable
from transforms.scoring import CouponScorerHandler, ScorerConfig, ScorerError

PASSWORD = 'kafka-Pa55word'
SCORER_TOKEN = 'scorer-t0ken'
CENTRAL_TOKEN = 'central-t0ken'
SECRETS = (PASSWORD, SCORER_TOKEN, CENTRAL_TOKEN)
SECRET_ENV = {
    'KAFKA_SECURITY_PROTOCOL': 'SASL_SSL',
    'KAFKA_SASL_MECHANISM': 'SCRAM-SHA-512',
    'KAFKA_SASL_USERNAME': 'coupon-scoring',
    'KAFKA_SASL_PASSWORD': PASSWORD,
    'SCORER_TOKEN': SCORER_TOKEN,
    'CENTRAL_TOKEN': CENTRAL_TOKEN,
}


def secured_settings() -> Settings:
    return resolve_settings(PipelineOptions([]), environ={**REQUIRED_ENV, **SECRET_ENV})


def assert_no_secret(text: str) -> None:
    assert not [secret for secret in SECRETS if secret in text], text


# --- settings ----------------------------------------------------------------------------


def test_secrets_come_from_the_environment():
    resolved = secured_settings()

    assert (resolved.kafka_sasl_password, resolved.scorer_token, resolved.central_token) == SECRETS
    assert resolved.secrets() == SECRETS


def test_settings_repr_shows_no_secret():
    assert_no_secret(repr(secured_settings()))
    assert_no_secret(str(secured_settings()))


def test_every_secret_setting_is_left_out_of_the_repr():
    fields = {field.name: field for field in dataclasses.fields(Settings)}

    assert {s.flag for s in SETTINGS if s.secret} == {
        'kafka_sasl_password',
        'scorer_token',
        'central_token',
    }
    assert all(not fields[s.flag].repr for s in SETTINGS if s.secret)


def test_settings_pickle_with_their_secrets():
    resolved = secured_settings()

    assert pickle.loads(pickle.dumps(resolved)) == resolved


@pytest.mark.parametrize(
    'flag, value',
    [
        ('--kafka_sasl_password', PASSWORD),
        ('--scorer_token', SCORER_TOKEN),
        ('--central_token', CENTRAL_TOKEN),
    ],
)
def test_a_secret_given_as_a_flag_is_refused_without_echo(flag, value):
    with pytest.raises(ConfigError) as raised:
        resolve_settings(PipelineOptions([f'{flag}={value}']), environ=REQUIRED_ENV)

    assert flag in str(raised.value)
    assert 'environment' in str(raised.value)
    assert_no_secret(str(raised.value))


@pytest.mark.parametrize('bad_token', [SCORER_TOKEN + '\n', 'two words', 'caf\u00e9'])
def test_a_token_that_is_no_valid_header_value_is_refused_without_echo(bad_token):
    with pytest.raises(ConfigError) as raised:
        resolve_settings(PipelineOptions([]), environ={**REQUIRED_ENV, 'SCORER_TOKEN': bad_token})

    assert 'SCORER_TOKEN' in str(raised.value)
    assert bad_token.strip() not in str(raised.value)


def test_redact_masks_every_secret():
    text = f'user coupon-scoring password {PASSWORD}, tokens {SCORER_TOKEN} {CENTRAL_TOKEN}'

    assert secured_settings().redact(text) == 'user coupon-scoring password ***, tokens *** ***'


# --- what the pipeline is built from --------------------------------------------------------


def test_kafka_connection_passes_the_password_to_clients_but_not_to_its_repr():
    connection = kafka_connection(secured_settings())

    config = connection._client_config()  # pylint: disable=protected-access
    assert config['sasl_plain_password'] == PASSWORD
    assert (
        config['security_protocol'],
        config['sasl_mechanism'],
        config['sasl_plain_username'],
    ) == ('SASL_SSL', 'SCRAM-SHA-512', 'coupon-scoring')
    assert_no_secret(repr(connection))
    assert pickle.loads(pickle.dumps(connection)) == connection


def test_http_client_configs_hold_their_tokens_out_of_the_repr():
    resolved = secured_settings()

    assert (scorer_config(resolved).token, central_config(resolved).token) == (
        SCORER_TOKEN,
        CENTRAL_TOKEN,
    )
    assert_no_secret(repr(scorer_config(resolved)) + repr(central_config(resolved)))


def test_cannot_start_message_masks_secrets():
    error = ValueError(f'broker refused coupon-scoring/{PASSWORD}')

    message = cannot_start_message(error, secured_settings())

    assert 'cannot start' in message and 'BOOTSTRAP_SERVERS' in message
    assert_no_secret(message)


def test_log_filter_masks_arguments_and_tracebacks(caplog):
    logger = logging.getLogger('test_secrets')
    caplog.handler.addFilter(SecretMaskingFilter(secured_settings()))
    try:
        raise RuntimeError(f'header Bearer {SCORER_TOKEN}')
    except RuntimeError:
        logger.exception('failed with %s and %r', PASSWORD, {'token': CENTRAL_TOKEN})

    assert 'failed with *** and' in caplog.text
    assert 'Bearer ***' in caplog.text
    assert_no_secret(caplog.text)


# --- the token on the wire, against the stand-ins' check ---------------------------------


class _Handler(JsonRequestHandler):
    """Answers every GET and POST with the Authorization header it got."""

    def get(self, path: str) -> Response:
        return HTTPStatus.OK, self._echo()

    def post(self, path: str, body: bytes) -> Response:
        return HTTPStatus.OK, {'predictions': [0.5, 0.5], **self._echo()}

    def _echo(self) -> Payload:
        return {'departments': {}, 'authorization': self.headers.get('Authorization')}


class _EchoingRefusal(_Handler):
    """Refuses every request, quoting the Authorization header back (a careless server)."""

    def post(self, path: str, body: bytes) -> Response:
        return HTTPStatus.UNAUTHORIZED, self._echo()


@contextlib.contextmanager
def serving(handler: type[JsonRequestHandler]) -> Iterator[str]:
    """The base URL of ``handler`` served from a thread on a free port."""
    server = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_port}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def standin_token(monkeypatch) -> str:
    monkeypatch.setenv('STANDIN_TOKEN', CENTRAL_TOKEN)
    return CENTRAL_TOKEN


def test_standin_refuses_a_request_without_the_token_but_not_health(standin_token):
    with serving(_Handler) as url:
        assert requests.get(url + '/coupons', timeout=5).status_code == 401
        assert (
            requests.get(
                url + '/coupons', timeout=5, headers={'Authorization': 'Bearer wrong'}
            ).status_code
            == 401
        )
        assert requests.get(url + '/health', timeout=5).status_code == 200
        assert (
            requests.get(
                url + '/coupons', timeout=5, headers={'Authorization': f'Bearer {standin_token}'}
            ).status_code
            == 200
        )


def test_central_client_sends_its_token(standin_token):
    with serving(_Handler) as url:
        client = CentralClient(CentralConfig(url, token=standin_token))
        assert client.coupon_catalogue() == {}


def test_central_client_without_the_token_is_refused_and_says_so(standin_token):
    with serving(_Handler) as url:
        client = CentralClient(CentralConfig(url, retries=0, token='another-token'))
        with pytest.raises(CentralUnavailable, match='HTTP 401'):
            client.coupon_catalogue()


def one_focus_batch():
    return [enriched(focus(1, 100.0), context(1), coupon(11), coupon(12))]


def test_scorer_client_sends_its_token(monkeypatch):
    monkeypatch.setenv('STANDIN_TOKEN', SCORER_TOKEN)
    with serving(_Handler) as url:
        handler = CouponScorerHandler(ScorerConfig(url, retry_s=0, token=SCORER_TOKEN))
        scored = list(handler.request(one_focus_batch(), handler.create_client()))

    assert [p.prediction for p in scored[0].predictions] == [0.5, 0.5]


def test_scorer_error_quoting_the_header_is_masked():
    with serving(_EchoingRefusal) as url:
        handler = CouponScorerHandler(ScorerConfig(url, retry_s=0, token=SCORER_TOKEN))
        with pytest.raises(ScorerError) as raised:
            list(handler.request(one_focus_batch(), handler.create_client()))

    assert 'HTTP 401' in str(raised.value) and 'Bearer ***' in str(raised.value)
    assert_no_secret(str(raised.value))


def test_a_bad_token_fails_the_client_without_showing_it():
    with pytest.raises(ValueError) as raised:
        CentralClient(CentralConfig('http://127.0.0.1:1', token=CENTRAL_TOKEN + '\r\n'))

    assert_no_secret(str(raised.value))
