"""Configuration of the coupon-scoring pipeline, in one place.

Every setting has a command-line flag and an environment variable; a flag
overrides the variable, the variable overrides the default. The names of the
seed service's variables (BOOTSTRAP_SERVERS, GROUP_ID, ...) keep their meaning
and defaults. ``resolve_settings`` turns the options into a validated, frozen
``Settings`` that the transforms receive; a missing or malformed value stops
the start with a ``ConfigError`` that names the variable and the flag.

Secrets (the Kafka password, the scorer's and the central's tokens) come from
the environment only: a command line is visible to every process of the host
and Beam sends flags to the runner with the pipeline options. They are kept out
of ``repr(Settings)``, and ``Settings.redact`` masks them in any text.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlparse

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.xlang.runtime import BOOTSTRAP_COMMAND, missing_runtime
from transforms.central import is_valid_token, masked


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: its flag, its environment variable, its parser, its default."""

    flag: str
    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    required: bool = False
    secret: bool = False


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError('must be a positive integer')
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise ValueError('must be a TCP port, 1 to 65535')
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float('inf'):  # also refuses nan and inf
        raise ValueError('must be a positive number')
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError('must be between 0 and 1')
    return value


def _http_url(text: str) -> str:
    url = urlparse(text)
    if url.scheme not in ('http', 'https') or not url.netloc:
        raise ValueError('must be an http(s) URL')
    return text.rstrip('/')


def _bootstrap_servers(text: str) -> str:
    for server in text.split(','):
        host, _, port = server.strip().rpartition(':')
        if not host or not port.isdigit():
            raise ValueError('must be a comma-separated list of host:port')
    return text


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError('must be one of ' + ', '.join(allowed))
        return text

    return parse


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError('must not be empty')
    return text


def _token(text: str) -> str:
    if not is_valid_token(text):
        raise ValueError('must be printable ASCII without spaces or line breaks')
    return text


SETTINGS: tuple[Setting, ...] = (
    # The seed service's table.
    Setting(
        'bootstrap_servers',
        'BOOTSTRAP_SERVERS',
        _bootstrap_servers,
        '127.0.0.1:9092',
        'comma-separated list of Kafka brokers',
    ),
    Setting(
        'client_id',
        'CLIENT_ID',
        _text,
        'kafkaClients',
        'client id of every Kafka client (suffixed per client)',
    ),
    Setting(
        'group_id',
        'GROUP_ID',
        _text,
        None,
        'consumer group: start offsets are read from it, and a partition\'s offset is '
        'committed to it once every record before it has ended; none means no commits',
    ),
    Setting(
        'poll_timeout_ms',
        'POLL_TIMEOUT',
        _positive_int,
        # Prism runs the customer-session stage when the read's watermark moves, at the end
        # of the read bundle after the one that read a focus event: a quiet partition's
        # bundle lasts this long. 100 ms gave p50 149 ms at 10 focus events/s, 30 ms 54 ms.
        30,
        'time spent waiting for messages in one poll round (ms); the partitions '
        'read in one bundle share it',
    ),
    Setting(
        'auto_offset_reset',
        'AUTO_OFFSET_RESET',
        _choice('earliest', 'latest'),
        'latest',
        'where to start a partition the group has no offset for',
    ),
    Setting(
        'kafka_isolation_level',
        'KAFKA_ISOLATION_LEVEL',
        _choice('read_committed', 'read_uncommitted'),
        'read_committed',
        'which records of transactional producers are read: read_committed (only those of '
        'committed transactions) or read_uncommitted (aborted ones too)',
    ),
    Setting(
        'entry_topic', 'ENTRY_EVENT_TOPIC_NAME', _text, None, 'topic of entry events', required=True
    ),
    Setting(
        'focus_topic', 'FOCUS_EVENT_TOPIC_NAME', _text, None, 'topic of focus events', required=True
    ),
    Setting(
        'prediction_topic',
        'COUPON_PREDICTION_TOPIC_NAME',
        _text,
        None,
        'topic the prediction results are written to',
        required=True,
    ),
    Setting(
        'scorer_url',
        'COUPON_SCORER_URL',
        _http_url,
        None,
        'URL the scorer answers {"instances"} on',
        required=True,
    ),
    # What the design adds.
    Setting(
        'central_url',
        'CENTRAL_URL',
        _http_url,
        None,
        'base URL of the central (customer contexts, coupon catalogue)',
        required=True,
    ),
    Setting(
        'dead_letter_topic',
        'DEAD_LETTER_TOPIC_NAME',
        _text,
        None,
        'topic of dead-letter records',
        required=True,
    ),
    Setting(
        'context_ttl_s',
        'CONTEXT_TTL_SECONDS',
        _positive_float,
        4 * 3600.0,
        'how long a customer context is kept after the customer\'s last event (event time; '
        'the expiry is rounded up to the minute)',
    ),
    Setting(
        'watermark_lag_s',
        'WATERMARK_LAG_SECONDS',
        _positive_float,
        2.0,
        'the read watermark trails the newest record time (the wall clock '
        'when a partition is caught up) by this',
    ),
    Setting(
        'partition_discovery_s',
        'PARTITION_DISCOVERY_SECONDS',
        _positive_float,
        30.0,
        'how often the input topics are listed for partitions added while the pipeline '
        'runs; a partition found that way is read from its first offset',
    ),
    Setting('top_k', 'TOP_K', _positive_int, 5, 'most coupons published per focus event'),
    Setting(
        'prediction_threshold',
        'PREDICTION_THRESHOLD',
        _probability,
        0.2,
        'lowest prediction published',
    ),
    Setting(
        'scorer_max_rows',
        'SCORER_MAX_ROWS',
        _positive_int,
        2000,
        'most (customer, coupon) rows in one scorer request',
    ),
    Setting(
        'scorer_timeout_s',
        'SCORER_TIMEOUT_SECONDS',
        _positive_float,
        5.0,
        'timeout of one scorer request',
    ),
    Setting(
        'scorer_retry_s',
        'SCORER_RETRY_SECONDS',
        _positive_float,
        60.0,
        'how long a batch keeps retrying a failing scorer (backoff from 0.2 s doubling '
        'to 5 s) before its focus events become scoring_failed dead letters',
    ),
    Setting(
        'central_timeout_s',
        'CENTRAL_TIMEOUT_SECONDS',
        _positive_float,
        2.0,
        'timeout of one request to the central',
    ),
    Setting(
        'central_retries',
        'CENTRAL_RETRIES',
        int,
        3,
        'retries of a failed request to the central, with backoff',
    ),
    Setting(
        'central_max_concurrency',
        'CENTRAL_MAX_CONCURRENCY',
        _positive_int,
        8,
        'most requests in flight to the central from one worker process',
    ),
    Setting(
        'catalogue_refresh_s',
        'CATALOGUE_REFRESH_SECONDS',
        _positive_float,
        300.0,
        'how often the coupon catalogue is reloaded from the central',
    ),
    # Faults: bounded dead letters, writes, drain, quarantine.
    Setting(
        'dead_letter_max_original_bytes',
        'DEAD_LETTER_MAX_ORIGINAL_BYTES',
        _positive_int,
        64 * 1024,
        'most bytes of the original input a dead letter carries (its first bytes; the '
        'whole one\'s size and SHA-256 are always there)',
    ),
    Setting(
        'kafka_write_timeout_s',
        'KAFKA_WRITE_TIMEOUT_SECONDS',
        _positive_float,
        180.0,
        'how long a write keeps retrying (broker down, topic missing) before its record '
        'ends as a publish_failed dead letter (a dead letter\'s own write: a counted, '
        'logged drop)',
    ),
    Setting(
        'drain_timeout_s',
        'DRAIN_TIMEOUT_SECONDS',
        _positive_float,
        30.0,
        'on SIGTERM or Ctrl-C, how long to wait for what was read to be written and '
        'committed before cancelling',
    ),
    Setting(
        'lease_timeout_s',
        'LEASE_TIMEOUT_SECONDS',
        _positive_float,
        10.0,
        'with a GROUP_ID, one process reads it and the others stand by (pipeline/lease.py); '
        'a standby takes over this long after the active one died (the lease group\'s '
        'session timeout; the broker\'s group.min.session.timeout.ms, 6 s by default, is '
        'the least)',
    ),
    Setting(
        'failure_journal',
        'FAILURE_JOURNAL',
        _text,
        None,
        'JSON file of the input records that failed the job (default '
        '.local/state/failures-<GROUP_ID>.json)',
    ),
    Setting(
        'quarantine_after',
        'QUARANTINE_AFTER_FAILURES',
        _positive_int,
        2,
        'a record that failed the job on this many consecutive starts is dead-lettered '
        '(poison_pill) on the next',
    ),
    # Reporting.
    Setting(
        'metrics_interval_s',
        'METRICS_INTERVAL_SECONDS',
        _positive_float,
        10.0,
        'how often the running pipeline logs its metrics',
    ),
    Setting(
        'metrics_file',
        'METRICS_FILE',
        _text,
        None,
        'a JSON file the metrics summary is also written to',
    ),
    Setting(
        'metrics_port',
        'METRICS_PORT',
        _port,
        None,
        'port of the Prometheus metrics (/metrics) and health (/health) endpoints; '
        'none means not served',
    ),
    # Kafka security, passed through to every Kafka client.
    Setting(
        'kafka_security_protocol',
        'KAFKA_SECURITY_PROTOCOL',
        _choice('PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'),
        'PLAINTEXT',
        'security.protocol of every Kafka client',
    ),
    Setting(
        'kafka_sasl_mechanism',
        'KAFKA_SASL_MECHANISM',
        _choice('PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'),
        None,
        'sasl.mechanism of every Kafka client',
    ),
    Setting('kafka_sasl_username', 'KAFKA_SASL_USERNAME', _text, None, 'SASL user name'),
    Setting(
        'kafka_sasl_password', 'KAFKA_SASL_PASSWORD', _text, None, 'SASL password', secret=True
    ),
    Setting('kafka_ssl_cafile', 'KAFKA_SSL_CAFILE', _text, None, 'CA bundle to verify the brokers'),
    # Which Kafka connector.
    Setting(
        'kafka_io',
        'KAFKA_IO',
        _choice('python', 'xlang', 'xlang-read'),
        'python',
        'Kafka connector: python (kafka-python in the Python harness, the default on the '
        'DirectRunner), xlang (Beam\'s cross-language Java KafkaIO both ways) or xlang-read '
        '(KafkaIO reads, kafka-python writes: the default on Flink, where the read is a native '
        f'Flink source); xlang needs Java and the jars of {BOOTSTRAP_COMMAND}',
    ),
    Setting(
        'ended_ledger',
        'ENDED_LEDGER',
        _choice('on', 'off'),
        'off',
        'on Flink with KafkaIO\'s read and the Python writer, record what has ended in the group '
        '<GROUP_ID>.ended so that a restore from a checkpoint publishes no focus event twice; '
        'off: a restore repeats up to a checkpoint interval of input, for less latency and CPU',
    ),
    # Tokens of the HTTP services, sent as "Authorization: Bearer <token>".
    Setting(
        'scorer_token', 'SCORER_TOKEN', _token, None, 'bearer token sent to the scorer', secret=True
    ),
    Setting(
        'central_token',
        'CENTRAL_TOKEN',
        _token,
        None,
        'bearer token sent to the central',
        secret=True,
    ),
)


class CouponScoringOptions(PipelineOptions):
    """Flags of the coupon-scoring pipeline; see ``SETTINGS`` for each one."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        for setting in SETTINGS:
            # A secret's flag exists only to be refused by name: Beam would log an
            # unknown flag, value included, as an unparseable argument.
            source = 'environment only' if setting.secret else f'default {setting.default}'
            parser.add_argument(
                '--' + setting.flag,
                default=None,
                help=f'{setting.help} (env {setting.env}, {source})',
            )


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated settings the transforms are built from; secrets are left out of its repr."""

    bootstrap_servers: str
    client_id: str
    group_id: Optional[str]
    poll_timeout_ms: int
    auto_offset_reset: str
    kafka_isolation_level: str
    entry_topic: str
    focus_topic: str
    prediction_topic: str
    scorer_url: str
    central_url: str
    dead_letter_topic: str
    context_ttl_s: float
    watermark_lag_s: float
    partition_discovery_s: float
    top_k: int
    prediction_threshold: float
    scorer_max_rows: int
    scorer_timeout_s: float
    scorer_retry_s: float
    central_timeout_s: float
    central_retries: int
    central_max_concurrency: int
    catalogue_refresh_s: float
    dead_letter_max_original_bytes: int
    kafka_write_timeout_s: float
    drain_timeout_s: float
    lease_timeout_s: float
    failure_journal: Optional[str]
    quarantine_after: int
    metrics_interval_s: float
    metrics_file: Optional[str]
    metrics_port: Optional[int]
    kafka_security_protocol: str
    kafka_sasl_mechanism: Optional[str]
    kafka_sasl_username: Optional[str]
    kafka_sasl_password: Optional[str] = dataclasses.field(repr=False)
    kafka_ssl_cafile: Optional[str]
    kafka_io: str
    ended_ledger: str
    scorer_token: Optional[str] = dataclasses.field(repr=False)
    central_token: Optional[str] = dataclasses.field(repr=False)

    @property
    def reads_with_kafkaio(self) -> bool:
        """Java KafkaIO reads the input topics (KAFKA_IO xlang or xlang-read)."""
        return self.kafka_io in ('xlang', 'xlang-read')

    @property
    def writes_with_kafkaio(self) -> bool:
        return self.kafka_io == 'xlang'

    def kafka_client_config(self) -> dict[str, Any]:
        """Connection settings shared by every Kafka client (kafka-python names)."""
        config = {
            'bootstrap_servers': self.bootstrap_servers.split(','),
            'security_protocol': self.kafka_security_protocol,
            'sasl_mechanism': self.kafka_sasl_mechanism,
            'sasl_plain_username': self.kafka_sasl_username,
            'sasl_plain_password': self.kafka_sasl_password,
            'ssl_cafile': self.kafka_ssl_cafile,
        }
        return {name: value for name, value in config.items() if value is not None}

    def secrets(self) -> tuple[str, ...]:
        """The values of the secret settings that are set."""
        values = (getattr(self, setting.flag) for setting in SETTINGS if setting.secret)
        return tuple(value for value in values if value)

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        for secret in self.secrets():
            text = masked(text, secret)
        return text


def _resolve(setting: Setting, flags: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    raw = flags.get(setting.flag)
    if raw is not None and setting.secret:
        raise ConfigError(
            f'{setting.env} is a secret: set it in the environment, not with --{setting.flag} '
            '(a command line is visible to other processes)'
        )
    if raw is None:
        raw = environ.get(setting.env) or None
    if raw is None:
        if setting.required:
            raise ConfigError(f'{setting.env} (--{setting.flag}) is required: {setting.help}')
        return setting.default
    try:
        return setting.parse(str(raw))
    except ValueError as error:
        shown = '***' if setting.secret else repr(raw)
        raise ConfigError(
            f'{setting.env} (--{setting.flag}) = {shown} is invalid: {error}'
        ) from None


def resolve_settings(
    options: PipelineOptions, environ: Optional[Mapping[str, str]] = None
) -> Settings:
    """Merges flags over environment variables over defaults, and validates."""
    environ = os.environ if environ is None else environ
    flags = options.view_as(CouponScoringOptions).get_all_options()
    values, problems = {}, []
    for setting in SETTINGS:
        try:
            values[setting.flag] = _resolve(setting, flags, environ)
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError('\n  '.join(problems))
    settings = Settings(**values)
    if settings.kafka_sasl_mechanism and not settings.kafka_sasl_username:
        raise ConfigError(
            'KAFKA_SASL_USERNAME (--kafka_sasl_username) is required '
            'when KAFKA_SASL_MECHANISM is set'
        )
    if settings.ended_ledger == 'on' and settings.writes_with_kafkaio:
        raise ConfigError(
            'ENDED_LEDGER (--ended_ledger) = on needs the Python writer (KAFKA_IO xlang-read): '
            'KafkaIO\'s writer ends a record before the broker has it'
        )
    if settings.reads_with_kafkaio:
        _check_xlang(settings)
    return settings


def _check_xlang(settings: Settings) -> None:
    """Fails fast where KAFKA_IO=xlang cannot run: no jars, no Java, a PEM CA file."""
    problem = missing_runtime()
    if problem:
        raise ConfigError(f'KAFKA_IO (--kafka_io) = {settings.kafka_io} cannot run here: {problem}')
    if settings.kafka_ssl_cafile:
        raise ConfigError(
            'KAFKA_SSL_CAFILE (--kafka_ssl_cafile) is not supported with '
            f'KAFKA_IO={settings.kafka_io}: the Java Kafka client 2.4.1 that KafkaIO 2.73 is built '
            'for reads no PEM CA bundle (use KAFKA_IO=python)'
        )
