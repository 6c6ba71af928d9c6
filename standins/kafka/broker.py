"""A local single-node Apache Kafka broker (KRaft mode) for development and tests: :class:`KafkaBroker`.

It stands in for the Kafka cluster the pipeline talks to; it is not part of the product.
The broker runs from the Kafka jars that ``standins/kafka/pom.xml`` pins, fetched from
Maven Central with ``mvn`` into ``<repo>/.local/kafka/lib``, on the JVM found through
``JAVA_HOME`` or ``PATH`` (Java 17 or newer); see :mod:`standins.kafka.jvm`.

Layout under ``<repo>/.local`` for a broker on client port P:

- ``kafka/lib/``: the jars, plus a stamp holding the hash of the pom they came from;
- ``kafka/server-P.properties``: the broker's configuration, rewritten on every start;
- ``kafka/data-P/``: the formatted log directory (topics survive restarts);
- ``kafka/kafka-P.pid``: the pid of the running broker;
- ``logs/kafka-P.log``: the broker's stdout and stderr.

By default the client listener is PLAINTEXT. With ``scram_user`` it is SASL_SSL instead
(:mod:`standins.kafka.config`), with TLS certificates generated with ``openssl`` into the data
directory as ``tls-ca.pem`` and ``tls-server.pem`` (:mod:`standins.kafka.tls`).

This module also re-exports the package's other public names (:func:`create_topics`,
:class:`ScramUser`, :class:`BrokerError`, :func:`fetch_jars`, ...), their import path before
the package was split.

Liveness checks read ``/proc``, so this module runs on Linux only.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections import deque
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from kafka.errors import KafkaError

from standins.kafka.config import HOST, SASL_MECHANISM, ScramUser, server_properties
from standins.kafka.errors import BrokerError
from standins.kafka.jvm import (
    DEFAULT_LOG_DIR,
    JVM_OPTIONS,
    KAFKA_HOME,
    LIB_DIR,
    LOG4J_CONFIG,
    POM,
    REPO_ROOT,
    fetch_jars,
    java_command,
)
from standins.kafka.tls import (
    CA_FILE,
    CERT_DAYS,
    SERVER_CERT_EXTENSIONS,
    SERVER_KEYSTORE_FILE,
    ensure_certificates,
)
from standins.kafka.topics import TOPIC_TIMEOUT_S, admin_client, create_topics
from standins.ports import port_free

__all__ = [
    "CA_FILE",
    "CERT_DAYS",
    "DEFAULT_LOG_DIR",
    "DEFAULT_PORT",
    "HOST",
    "JVM_OPTIONS",
    "KAFKA_HOME",
    "LIB_DIR",
    "LOG4J_CONFIG",
    "LOG_TAIL_LINES",
    "POM",
    "READY_TIMEOUT_S",
    "REPO_ROOT",
    "SASL_MECHANISM",
    "SERVER_CERT_EXTENSIONS",
    "SERVER_KEYSTORE_FILE",
    "STOP_TIMEOUT_S",
    "TOPIC_TIMEOUT_S",
    "BrokerError",
    "KafkaBroker",
    "ScramUser",
    "create_topics",
    "fetch_jars",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 9092
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 40


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
            ensure_certificates(self.data_dir)
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
            with admin_client(self.bootstrap_servers, self.client_config()) as admin:
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
            if port is not None and not port_free(port):
                raise BrokerError(
                    f"port {port} on {HOST} is in use by something other than this stand-in's Kafka "
                    f"(no live broker in {self.pid_file}); stop it or choose another port (KAFKA_PORT)"
                )

    def _write_config(self) -> None:
        """Write ``server-<port>.properties``."""
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        properties = server_properties(
            port=self.port,
            controller_port=self.controller_port,
            internal_port=self.internal_port,
            data_dir=self.data_dir,
            sasl_ssl=self.scram_user is not None,
        )
        lines = [f"{key}={value}" for key, value in properties.items()]
        self.config_file.write_text(
            "# Written by standins/kafka/broker.py on every start.\n" + "\n".join(lines) + "\n"
        )

    def _format_storage(self, lib_dir: Path) -> None:
        """Format the data directory as a standalone KRaft controller, unless already formatted."""
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            *java_command(lib_dir),
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
                [*java_command(lib_dir), "kafka.Kafka", str(self.config_file)],
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
