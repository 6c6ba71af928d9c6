"""A local single-node Apache Kafka broker (KRaft mode) for development and tests.

It stands in for the Kafka cluster the pipeline talks to; it is not part of the product.
The broker runs from the Kafka jars that ``standins/kafka/pom.xml`` pins, fetched from
Maven Central with ``mvn`` into ``<repo>/.local/kafka/lib``, on the JVM found through
``JAVA_HOME`` or ``PATH`` (Java 17 or newer).

Layout under ``<repo>/.local`` for a broker on client port P:

- ``kafka/lib/``: the jars, plus a stamp holding the hash of the pom they came from;
- ``kafka/server-P.properties``: the broker's configuration, rewritten on every start;
- ``kafka/data-P/``: the formatted log directory (topics survive restarts);
- ``kafka/kafka-P.pid``: the pid of the running broker;
- ``logs/kafka-P.log``: the broker's stdout and stderr.

By default the client listener is PLAINTEXT. With ``scram_user`` it is SASL_SSL instead:
SCRAM-SHA-512 for the user given (created when the data directory is formatted, so a data
directory keeps the credentials it was first formatted with) over TLS with a self-signed CA
and a server certificate for 127.0.0.1/localhost, generated with ``openssl`` into the data
directory as ``tls-ca.pem`` and ``tls-server.pem`` (PEM keystore). The controller listener
(``port + 1``) and the inter-broker listener INTERNAL (``port + 2``) then stay PLAINTEXT on
loopback: fine for one local node, but anything on this host can use the broker through
INTERNAL without a password.

Liveness checks read ``/proc``, so this module runs on Linux only.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.maven import MavenError, fetch_maven_jars

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = Path(__file__).resolve().with_name("pom.xml")
LOG4J_CONFIG = Path(__file__).resolve().with_name("log4j2.properties")
KAFKA_HOME = REPO_ROOT / ".local" / "kafka"
LIB_DIR = KAFKA_HOME / "lib"
DEFAULT_LOG_DIR = REPO_ROOT / ".local" / "logs"

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
TOPIC_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40
JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
SASL_MECHANISM = "SCRAM-SHA-512"
CA_FILE = "tls-ca.pem"
SERVER_KEYSTORE_FILE = "tls-server.pem"
CERT_DAYS = 365
SERVER_CERT_EXTENSIONS = (
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth\n"
    "authorityKeyIdentifier=keyid,issuer\n"
)


class BrokerError(RuntimeError):
    """The local Kafka broker could not be fetched, started, stopped or used."""


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM-SHA-512 user of the SASL_SSL listener; the password never shows in a repr."""

    name: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        for value in (self.name, self.password):
            if not value or any(c in value for c in ",=[]\"' \t\n"):
                raise ValueError(
                    "SCRAM user names and passwords must be non-empty, without ,=[]\"' or blanks"
                )

    def storage_argument(self) -> str:
        """The value of ``kafka-storage format --add-scram`` that creates this user."""
        return f"{SASL_MECHANISM}=[name={self.name},password={self.password}]"


def fetch_jars(lib_dir: Path = LIB_DIR) -> Path:
    """Put the broker's jars into ``lib_dir`` with Maven, unless they are already there
    (``pipeline.maven``: stamped with the pom's hash, replaced only on success)."""
    try:
        return fetch_maven_jars(POM, lib_dir)
    except MavenError as error:
        raise BrokerError(str(error)) from error


class KafkaBroker:
    """A single-node KRaft Kafka (broker and controller in one JVM) on 127.0.0.1.

    ``start()`` reuses a broker this class already started on the same port (found through
    its pid file), so several processes can share one broker. As a context manager it
    starts the broker and, on exit, stops it only if this instance launched it.
    """

    def __init__(
        self,
        port: int | None = None,
        controller_port: int | None = None,
        data_dir: Path | None = None,
        log_dir: Path | None = None,
        scram_user: ScramUser | None = None,
    ) -> None:
        """Describe a broker; nothing runs until ``start()``.

        Args:
            port: client port (PLAINTEXT, or SASL_SSL with ``scram_user``); defaults to
                ``$KAFKA_PORT`` or 9092.
            controller_port: KRaft controller port; defaults to ``port + 1``.
            data_dir: Kafka's log directory; defaults to ``<repo>/.local/kafka/data-<port>``.
            log_dir: where ``kafka-<port>.log`` goes; defaults to ``<repo>/.local/logs``.
            scram_user: makes the client listener SASL_SSL (SCRAM-SHA-512 over TLS) with this
                user; the inter-broker listener INTERNAL then takes ``port + 2`` (PLAINTEXT).
        """
        self.port = port if port is not None else int(os.environ.get("KAFKA_PORT", DEFAULT_PORT))
        self.controller_port = controller_port if controller_port is not None else self.port + 1
        self.data_dir = data_dir if data_dir is not None else KAFKA_HOME / f"data-{self.port}"
        self.log_file = (
            log_dir if log_dir is not None else DEFAULT_LOG_DIR
        ) / f"kafka-{self.port}.log"
        self.config_file = KAFKA_HOME / f"server-{self.port}.properties"
        self.pid_file = KAFKA_HOME / f"kafka-{self.port}.pid"
        self.scram_user = scram_user
        self.internal_port = self.port + 2 if scram_user is not None else None
        self.started_here = False
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The ``host:port`` that Kafka clients bootstrap from."""
        return f"{HOST}:{self.port}"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate (PEM) that verifies the SASL_SSL listener; None for PLAINTEXT."""
        return self.data_dir / CA_FILE if self.scram_user is not None else None

    def client_config(self) -> dict[str, Any]:
        """What a kafka-python client needs besides ``bootstrap_servers`` to connect."""
        if self.scram_user is None:
            return {}
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": SASL_MECHANISM,
            "sasl_plain_username": self.scram_user.name,
            "sasl_plain_password": self.scram_user.password,
            "ssl_cafile": str(self.ca_file),
        }

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.started_here:
            self.stop()

    def start(self, timeout: float = READY_TIMEOUT_S) -> KafkaBroker:
        """Start the broker in the background (or reuse a running one) and wait until it serves.

        Raises:
            BrokerError: a port is taken by something else, the jars cannot be fetched,
                formatting fails, or the broker dies or is not ready within ``timeout``.
        """
        pid = self.running_pid()
        if pid is not None:
            log.info("reusing the Kafka broker already running on port %d (pid %d)", self.port, pid)
            self.wait_ready(timeout)
            return self
        self.pid_file.unlink(missing_ok=True)
        self._check_ports_free()
        lib_dir = fetch_jars()
        self._write_config()
        self._format_storage(lib_dir)
        if self.scram_user is not None:
            _ensure_certificates(self.data_dir)
        self._launch(lib_dir)
        try:
            self.wait_ready(timeout)
        except BrokerError:
            self.stop()  # leave no half-started JVM or stale pid file behind
            raise
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until an admin client can describe the cluster and list its topics.

        Raises:
            BrokerError: with the last lines of the broker's log, if the broker process
                is gone or ``timeout`` seconds pass first.
        """
        began = time.monotonic()
        while not self.is_ready():
            if not self._alive():
                raise self._failure("is not running")
            if time.monotonic() - began > timeout:
                raise self._failure(f"is not ready after {timeout:g} s")
            time.sleep(0.5)
        log.info(
            "Kafka ready on %s after %.1f s of waiting",
            self.bootstrap_servers,
            time.monotonic() - began,
        )

    def is_ready(self) -> bool:
        """Whether a broker answers metadata requests on the client port right now."""
        if not _port_open(self.port):
            return False
        try:
            with _admin(self.bootstrap_servers, self.client_config()) as admin:
                cluster = admin.describe_cluster()
                admin.list_topics()
        except (KafkaError, OSError):
            return False
        return bool(cluster["brokers"])

    def running_pid(self) -> int | None:
        """The pid of this port's broker, if its pid file names a live broker process."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_broker_process(pid) else None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop this port's broker: SIGTERM its process group, SIGKILL after ``timeout`` s.

        Stopping a broker that is not running only removes a stale pid file.
        """
        pid = self._process.pid if self._process is not None else self.running_pid()
        if pid is None:
            log.info("no Kafka broker running on port %d", self.port)
        else:
            log.info("stopping Kafka on port %d (pid %d)", self.port, pid)
            self._terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        self._process = None
        self.started_here = False

    def _terminate(self, pid: int, timeout: float) -> None:
        """End the process group led by ``pid``, politely first."""
        _signal_group(pid, signal.SIGTERM)
        if self._wait_exit(pid, timeout):
            return
        log.warning(
            "Kafka (pid %d) still running %.0f s after SIGTERM; sending SIGKILL", pid, timeout
        )
        _signal_group(pid, signal.SIGKILL)
        if not self._wait_exit(pid, 5.0):
            raise BrokerError(f"Kafka (pid {pid}) on port {self.port} survived SIGKILL")

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``pid`` to end (reaping it if it is our child)."""
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self._is_broker_process(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def _alive(self) -> bool:
        """Whether the broker process is still running."""
        if self._process is not None:
            return self._process.poll() is None
        return self.running_pid() is not None

    def _is_broker_process(self, pid: int) -> bool:
        """Whether ``pid`` is a live ``kafka.Kafka`` JVM started with this port's config file."""
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in arguments and str(self.config_file).encode() in arguments

    def _check_ports_free(self) -> None:
        """Fail with a clear message if the client or controller port is taken."""
        for port in (self.port, self.controller_port, self.internal_port):
            if port is not None and not _port_free(port):
                raise BrokerError(
                    f"port {port} on {HOST} is in use by something other than this stand-in's Kafka "
                    f"(no live broker in {self.pid_file}); stop it or choose another port (KAFKA_PORT)"
                )

    def _properties(self) -> dict[str, str]:
        """The broker's configuration, after Kafka 4.x's config/server.properties."""
        if self.scram_user is not None:
            return {**self._plaintext_properties(), **self._sasl_ssl_properties()}
        return self._plaintext_properties()

    def _plaintext_properties(self) -> dict[str, str]:
        """The configuration with one PLAINTEXT client listener (the default)."""
        listeners = f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}"
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }

    def _sasl_ssl_properties(self) -> dict[str, str]:
        """What replaces the PLAINTEXT client listener with SASL_SSL (SCRAM-SHA-512 over TLS)."""
        listener = "listener.name.sasl_ssl."
        advertised = f"SASL_SSL://{HOST}:{self.port},INTERNAL://{HOST}:{self.internal_port}"
        return {
            "listeners": f"{advertised},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": advertised,
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            f"{listener}sasl.enabled.mechanisms": SASL_MECHANISM,
            f"{listener}{SASL_MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{listener}ssl.keystore.type": "PEM",
            f"{listener}ssl.keystore.location": str(self.data_dir / SERVER_KEYSTORE_FILE),
        }

    def _write_config(self) -> None:
        """Write ``server-<port>.properties``."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in self._properties().items()]
        self.config_file.write_text(
            "# Written by standins/kafka/broker.py on every start.\n" + "\n".join(lines) + "\n"
        )

    def _format_storage(self, lib_dir: Path) -> None:
        """Format the data directory as a standalone KRaft controller, unless already formatted."""
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            *_java_command(lib_dir),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            _new_cluster_id(),
            "--config",
            str(self.config_file),
        ]
        if self.scram_user is not None:
            command += ["--add-scram", self.scram_user.storage_argument()]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = result.stdout + result.stderr
            if self.scram_user is not None:
                output = output.replace(self.scram_user.password, "***")
            raise BrokerError(
                f"formatting {self.data_dir} failed (exit {result.returncode}):\n{output}"
            )

    def _launch(self, lib_dir: Path) -> None:
        """Start the broker JVM in its own session, logging to ``log_file``."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as output:
            self._process = subprocess.Popen(
                [*_java_command(lib_dir), "kafka.Kafka", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=KAFKA_HOME,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._process.pid}\n")
        self.started_here = True
        log.info(
            "started Kafka on port %d (pid %d), log %s", self.port, self._process.pid, self.log_file
        )

    def _failure(self, what: str) -> BrokerError:
        """An error saying what is wrong with the broker, with the last lines of its log."""
        try:
            with self.log_file.open(errors="replace") as lines:
                tail = "".join(deque(lines, maxlen=LOG_TAIL_LINES))
        except OSError as error:
            tail = f"(no log: {error})"
        return BrokerError(
            f"Kafka on port {self.port} {what}; last lines of {self.log_file}:\n{tail}"
        )


def create_topics(
    bootstrap_servers: str,
    names: Sequence[str],
    partitions: int = 3,
    timeout: float = TOPIC_TIMEOUT_S,
    client_config: Mapping[str, Any] | None = None,
    topic_configs: Mapping[str, str] | None = None,
) -> None:
    """Create topics (replication factor 1) unless they exist; wait until all have leaders.

    One request per topic: kafka-python raises the first error of a request, so an existing
    topic would otherwise hide another topic's real error. ``client_config`` holds what a
    secured listener needs (``KafkaBroker.client_config()``); ``topic_configs`` the topics'
    own settings (``max.message.bytes``, ...).

    Raises:
        KafkaError: the broker refused a topic for a reason other than that it exists.
        BrokerError: some partition still has no leader after ``timeout`` seconds.
    """
    with _admin(bootstrap_servers, client_config or {}) as admin:
        for name in names:
            try:
                admin.create_topics(
                    [NewTopic(name, partitions, 1, topic_configs=dict(topic_configs or {}))],
                    timeout_ms=int(timeout * 1000),
                )
            except TopicAlreadyExistsError:
                log.info("topic %s already exists", name)
        _wait_for_leaders(admin, names, timeout)


def _wait_for_leaders(admin: KafkaAdminClient, names: Sequence[str], timeout: float) -> None:
    """Poll topic metadata until every partition of every topic in ``names`` has a leader."""
    deadline = time.monotonic() + timeout
    while missing := _topics_without_leaders(admin.describe_topics(list(names)), names):
        if time.monotonic() > deadline:
            raise BrokerError(
                f"topics without a leader for every partition after {timeout:g} s: {missing}"
            )
        time.sleep(0.2)


def _topics_without_leaders(described: list[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """The topics in ``names`` that metadata does not show with a leader on every partition."""
    ready = {
        topic["topic"]
        for topic in described
        if topic["error_code"] == 0
        and topic["partitions"]
        and all(partition["leader"] >= 0 for partition in topic["partitions"])
    }
    return sorted(set(names) - ready)


@contextmanager
def _admin(bootstrap_servers: str, client_config: Mapping[str, Any]) -> Iterator[KafkaAdminClient]:
    """A short-lived admin client that gives up quickly when nothing answers."""
    admin = KafkaAdminClient(
        **client_config,
        bootstrap_servers=bootstrap_servers,
        client_id="standins-kafka",
        request_timeout_ms=10_000,
        api_version_auto_timeout_ms=5_000,
    )
    try:
        yield admin
    finally:
        admin.close()


def _java_command(lib_dir: Path) -> list[str]:
    """``java`` with the heap limits, the log4j2 config and the jars on the classpath."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else "java"
    return [
        java,
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        str(lib_dir / "*"),
    ]


def _ensure_certificates(directory: Path) -> None:
    """Create a self-signed CA and a server keystore for 127.0.0.1/localhost, unless present.

    ``CA_FILE`` holds the CA certificate, ``SERVER_KEYSTORE_FILE`` the server's unencrypted
    PKCS#8 key followed by its certificate (Kafka's PEM keystore). The CA's key is deleted.
    """
    if (directory / CA_FILE).exists() and (directory / SERVER_KEYSTORE_FILE).exists():
        return
    work = directory / "tls-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-noenc",
            "-days",
            str(CERT_DAYS),
            "-subj",
            "/CN=standins-kafka-ca",
            "-keyout",
            str(work / "ca.key"),
            "-out",
            str(work / "ca.pem"),
        )
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-noenc",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(work / "server.key"),
            "-out",
            str(work / "server.csr"),
        )
        (work / "server.ext").write_text(SERVER_CERT_EXTENSIONS)
        _openssl(
            "x509",
            "-req",
            "-in",
            str(work / "server.csr"),
            "-CA",
            str(work / "ca.pem"),
            "-CAkey",
            str(work / "ca.key"),
            "-CAcreateserial",
            "-days",
            str(CERT_DAYS),
            "-extfile",
            str(work / "server.ext"),
            "-out",
            str(work / "server.crt"),
        )
        keystore = (work / "server.key").read_text() + (work / "server.crt").read_text()
        (directory / SERVER_KEYSTORE_FILE).write_text(keystore)
        (directory / SERVER_KEYSTORE_FILE).chmod(0o600)
        shutil.copyfile(work / "ca.pem", directory / CA_FILE)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _openssl(*arguments: str) -> None:
    """Run ``openssl`` with ``arguments``; raise BrokerError with its output if it fails."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError(
            "openssl is not on PATH; it is needed for the SASL_SSL listener's certificates"
        )
    result = subprocess.run([openssl, *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            f"openssl {arguments[0]} failed (exit {result.returncode}):\n{result.stderr}"
        )


def _new_cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 of 16 bytes, not starting with '-')."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid``, if it still exists."""
    with suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _port_open(port: int) -> bool:
    """Whether something accepts TCP connections on ``HOST:port``."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def _port_free(port: int) -> bool:
    """Whether a server could bind ``HOST:port`` now (as Kafka does, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True
