"""The broker's configuration (``server-<port>.properties``) and the SCRAM user of SASL_SSL.

By default the client listener is PLAINTEXT. With a :class:`ScramUser` it is SASL_SSL instead:
SCRAM-SHA-512 for that user (created when the data directory is formatted, so a data
directory keeps the credentials it was first formatted with) over TLS with a self-signed CA
and a server certificate for 127.0.0.1/localhost (:mod:`standins.kafka.tls`). The controller
listener (``port + 1``) and the inter-broker listener INTERNAL (``port + 2``) then stay
PLAINTEXT on loopback: fine for one local node, but anything on this host can use the broker
through INTERNAL without a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from standins.kafka.tls import SERVER_KEYSTORE_FILE

HOST = "127.0.0.1"
SASL_MECHANISM = "SCRAM-SHA-512"


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


def server_properties(
    *,
    port: int,
    controller_port: int,
    internal_port: int | None,
    data_dir: Path,
    sasl_ssl: bool,
) -> dict[str, str]:
    """The broker's configuration, after Kafka 4.x's config/server.properties.

    Args:
        port: the client listener's port.
        controller_port: the KRaft controller listener's port.
        internal_port: the inter-broker listener INTERNAL's port (with ``sasl_ssl`` only).
        data_dir: Kafka's log directory (and, with ``sasl_ssl``, the TLS keystore's).
        sasl_ssl: the client listener is SASL_SSL rather than PLAINTEXT.
    """
    plaintext = _plaintext_properties(port, controller_port, data_dir)
    if sasl_ssl:
        return {**plaintext, **_sasl_ssl_properties(port, controller_port, internal_port, data_dir)}
    return plaintext


def _plaintext_properties(port: int, controller_port: int, data_dir: Path) -> dict[str, str]:
    """The configuration with one PLAINTEXT client listener (the default)."""
    listeners = f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}"
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "listeners": listeners,
        "advertised.listeners": listeners,
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }


def _sasl_ssl_properties(
    port: int, controller_port: int, internal_port: int | None, data_dir: Path
) -> dict[str, str]:
    """What replaces the PLAINTEXT client listener with SASL_SSL (SCRAM-SHA-512 over TLS)."""
    listener = "listener.name.sasl_ssl."
    advertised = f"SASL_SSL://{HOST}:{port},INTERNAL://{HOST}:{internal_port}"
    return {
        "listeners": f"{advertised},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": advertised,
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": SASL_MECHANISM,
        f"{listener}sasl.enabled.mechanisms": SASL_MECHANISM,
        f"{listener}{SASL_MECHANISM.lower()}.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        f"{listener}ssl.keystore.type": "PEM",
        f"{listener}ssl.keystore.location": str(data_dir / SERVER_KEYSTORE_FILE),
    }
