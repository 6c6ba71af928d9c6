"""Fixtures that start the real parts: a Kafka broker, the central and the scorer."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest

from standins.kafka.broker import KafkaBroker, create_topics
from standins.services import LocalServices

# TEST_KAFKA_PORT: another port, for a second test run at the same time.
KAFKA_PORT = int(os.environ.get('TEST_KAFKA_PORT', '19192'))
SCENARIO_CUSTOMERS = 1000


@pytest.fixture(scope='session')
def kafka(tmp_path_factory) -> Iterator[KafkaBroker]:
    data = tmp_path_factory.mktemp('kafka')
    broker = KafkaBroker(port=KAFKA_PORT, controller_port=KAFKA_PORT + 1, data_dir=data / 'data')
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope='session')
def services(tmp_path_factory) -> Iterator[LocalServices]:
    local = LocalServices(
        central_port=0,
        scorer_port=0,
        customers=SCENARIO_CUSTOMERS,
        local_dir=tmp_path_factory.mktemp('services'),
    )
    with local:
        yield local


@pytest.fixture
def topics(kafka: KafkaBroker) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    names = {kind: f'it.{run}.{kind}' for kind in ('entry', 'focus', 'predictions', 'deadletters')}
    create_topics(kafka.bootstrap_servers, list(names.values()), partitions=3)
    return names


FAULT_FIGURES: list[tuple[str, dict]] = []


@pytest.fixture
def fault_figures(request) -> dict:
    """Figures a fault test measured; printed at the end of the run (pytest's summary)."""
    figures: dict = {}
    FAULT_FIGURES.append((request.node.name, figures))
    return figures


def pytest_terminal_summary(terminalreporter) -> None:
    if not any(figures for _, figures in FAULT_FIGURES):
        return
    terminalreporter.section('fault figures')
    for name, figures in FAULT_FIGURES:
        if figures:
            terminalreporter.write_line(
                f'{name}: ' + ', '.join(f'{k}={v}' for k, v in figures.items())
            )
