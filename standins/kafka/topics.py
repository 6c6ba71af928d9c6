"""Topics on the local broker: :func:`create_topics`, and the short-lived admin client it uses.

The same admin client (:func:`admin_client`) serves :meth:`KafkaBroker.is_ready`'s check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from standins.kafka.errors import BrokerError

log = logging.getLogger(__name__)

TOPIC_TIMEOUT_S = 30.0


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
    with admin_client(bootstrap_servers, client_config or {}) as admin:
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
def admin_client(
    bootstrap_servers: str, client_config: Mapping[str, Any]
) -> Iterator[KafkaAdminClient]:
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
