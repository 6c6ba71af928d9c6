"""resolve_settings: flags over environment over defaults, validated."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.options import ConfigError, Settings, resolve_settings
from pipeline.xlang import runtime

REQUIRED_ENV = {
    'ENTRY_EVENT_TOPIC_NAME': 'entry',
    'FOCUS_EVENT_TOPIC_NAME': 'focus',
    'COUPON_PREDICTION_TOPIC_NAME': 'predictions',
    'COUPON_SCORER_URL': 'http://scorer:8501/v1/models/coupon:predict',
    'CENTRAL_URL': 'http://central:8080',
    'DEAD_LETTER_TOPIC_NAME': 'dead-letters',
}


def settings(*flags: str, drop: tuple[str, ...] = (), **env: str) -> Settings:
    """Settings from ``flags`` and the required environment plus ``env``, minus ``drop``."""
    environ = {**REQUIRED_ENV, **env}
    for name in drop:
        del environ[name]
    return resolve_settings(PipelineOptions(list(flags)), environ=environ)


def config_error(*flags: str, drop: tuple[str, ...] = (), **env: str) -> str:
    """The message of the ConfigError that these flags and environment raise."""
    with pytest.raises(ConfigError) as raised:
        settings(*flags, drop=drop, **env)
    return str(raised.value)


def test_missing_entry_topic_names_the_variable_and_the_flag():
    message = config_error(drop=('ENTRY_EVENT_TOPIC_NAME',))

    assert 'ENTRY_EVENT_TOPIC_NAME' in message
    assert '--entry_topic' in message


def test_required_setting_may_come_from_its_flag_alone():
    resolved = settings('--entry_topic=from-flag', drop=('ENTRY_EVENT_TOPIC_NAME',))

    assert resolved.entry_topic == 'from-flag'


def test_flag_overrides_environment():
    resolved = settings('--top_k=7', '--entry_topic=flag-entry', TOP_K='3')

    assert (resolved.top_k, resolved.entry_topic) == (7, 'flag-entry')


def test_environment_overrides_default():
    resolved = settings(POLL_TIMEOUT='250', AUTO_OFFSET_RESET='earliest', GROUP_ID='scorers')

    assert (resolved.poll_timeout_ms, resolved.auto_offset_reset, resolved.group_id) == (
        250,
        'earliest',
        'scorers',
    )


def test_empty_environment_variable_counts_as_unset():
    assert settings(POLL_TIMEOUT='').poll_timeout_ms == 30


def test_seed_defaults():
    resolved = settings()

    assert (
        resolved.bootstrap_servers,
        resolved.client_id,
        resolved.group_id,
        resolved.poll_timeout_ms,
        resolved.auto_offset_reset,
        resolved.kafka_isolation_level,
    ) == ('127.0.0.1:9092', 'kafkaClients', None, 30, 'latest', 'read_committed')  # seed: 100 ms


@pytest.mark.parametrize(
    'variable, flag, value',
    [
        ('POLL_TIMEOUT', '--poll_timeout_ms', 'abc'),
        ('AUTO_OFFSET_RESET', '--auto_offset_reset', 'middle'),
        ('KAFKA_ISOLATION_LEVEL', '--kafka_isolation_level', 'read_dirty'),
        ('COUPON_SCORER_URL', '--scorer_url', 'ftp://x'),
        ('BOOTSTRAP_SERVERS', '--bootstrap_servers', 'nohostport'),
        ('PREDICTION_THRESHOLD', '--prediction_threshold', '1.5'),
        ('TOP_K', '--top_k', '0'),
        ('LEASE_TIMEOUT_SECONDS', '--lease_timeout_s', '0'),
    ],
)
def test_malformed_value_raises_naming_the_variable(variable, flag, value):
    message = config_error(**{variable: value})

    assert variable in message
    assert flag in message
    assert repr(value) in message


def test_lease_timeout_defaults_to_10_s_and_is_set_by_its_variable():
    assert settings().lease_timeout_s == 10.0
    assert settings(LEASE_TIMEOUT_SECONDS='6').lease_timeout_s == 6.0


def test_secret_is_never_echoed_in_an_error():
    blank_password = ' \t '

    message = config_error(KAFKA_SASL_PASSWORD=blank_password)

    assert 'KAFKA_SASL_PASSWORD' in message
    assert '***' in message
    assert repr(blank_password) not in message


def test_kafka_client_config_drops_unset_values():
    assert settings(BOOTSTRAP_SERVERS='a:1,b:2').kafka_client_config() == {
        'bootstrap_servers': ['a:1', 'b:2'],
        'security_protocol': 'PLAINTEXT',
    }


def test_kafka_client_config_keeps_set_values():
    resolved = settings(
        KAFKA_SECURITY_PROTOCOL='SASL_SSL',
        KAFKA_SASL_MECHANISM='PLAIN',
        KAFKA_SASL_USERNAME='user',
        KAFKA_SASL_PASSWORD='secret',
    )

    assert resolved.kafka_client_config() == {
        'bootstrap_servers': ['127.0.0.1:9092'],
        'security_protocol': 'SASL_SSL',
        'sasl_mechanism': 'PLAIN',
        'sasl_plain_username': 'user',
        'sasl_plain_password': 'secret',
    }


def test_sasl_mechanism_without_username_is_refused():
    message = config_error(KAFKA_SASL_MECHANISM='PLAIN')

    assert 'KAFKA_SASL_USERNAME' in message


@pytest.fixture
def xlang_runtime(tmp_path, monkeypatch) -> None:
    """Jars and a launcher jar in place, and java on PATH, whatever this machine has."""
    (tmp_path / 'lib').mkdir()
    (tmp_path / 'lib' / 'beam.jar').touch()
    (tmp_path / 'launcher.jar').touch()
    monkeypatch.setattr(runtime, 'LIB_DIR', tmp_path / 'lib')
    monkeypatch.setattr(runtime, 'LAUNCHER_JAR', tmp_path / 'launcher.jar')
    monkeypatch.setattr(runtime.shutil, 'which', lambda name: f'/usr/bin/{name}')


def test_kafka_io_defaults_to_python_and_refuses_other_connectors():
    assert settings().kafka_io == 'python'
    assert 'must be one of python, xlang' in config_error('--kafka_io=java')


def test_the_ended_ledger_is_off_by_default_and_refused_with_kafkaio_s_writer(xlang_runtime):
    assert settings().ended_ledger == 'off'
    assert settings(KAFKA_IO='xlang-read', ENDED_LEDGER='on').ended_ledger == 'on'
    assert 'must be one of on, off' in config_error('--ended_ledger=yes')
    assert 'ENDED_LEDGER (--ended_ledger) = on needs the Python writer' in config_error(
        KAFKA_IO='xlang', ENDED_LEDGER='on'
    )


def test_kafka_io_xlang_is_accepted_with_jars_and_java(xlang_runtime):
    assert settings(KAFKA_IO='xlang').kafka_io == 'xlang'


def test_kafka_io_xlang_without_jars_names_the_bootstrap(xlang_runtime, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, 'LAUNCHER_JAR', tmp_path / 'absent.jar')

    message = config_error('--kafka_io=xlang')

    assert 'KAFKA_IO (--kafka_io) = xlang' in message
    assert 'scripts/bootstrap.sh' in message


def test_kafka_io_xlang_without_java_is_refused(xlang_runtime, monkeypatch):
    monkeypatch.setattr(runtime.shutil, 'which', lambda name: None)

    assert 'java is not on PATH' in config_error(KAFKA_IO='xlang')


def test_kafka_io_xlang_refuses_a_pem_ca_file(xlang_runtime):
    assert 'KAFKA_SSL_CAFILE' in config_error(KAFKA_IO='xlang', KAFKA_SSL_CAFILE='/ca.pem')
