"""pipeline.unread: partitions added after a KafkaIO read started are reported once, and shown."""

from __future__ import annotations

import logging

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError

from pipeline import unread
from pipeline.exporter import PipelineStatus
from transforms.kafka import KafkaConnection, progress


@pytest.fixture
def listed(monkeypatch) -> list:
    partitions = [[('entry', 0), ('focus', 0)]]

    def described_partitions(admin, topics):
        if isinstance(partitions[0], Exception):
            raise partitions[0]
        return [TopicPartition(topic, number) for topic, number in partitions[0]]

    monkeypatch.setattr(unread, 'described_partitions', described_partitions)
    monkeypatch.setattr(KafkaConnection, 'admin', lambda self, role: None)
    return partitions


def test_an_added_partition_is_reported_once_with_the_operators_step(listed, caplog):
    watch = unread.UnreadPartitions(KafkaConnection(client_config=(), client_id='t'), ['entry'])
    assert watch.check() == []
    listed[0] = [('entry', 0), ('focus', 0), ('focus', 1)]
    with caplog.at_level(logging.WARNING):
        assert watch.check() == ['focus/1']
        assert watch.check() == ['focus/1']
    warnings = [r.getMessage() for r in caplog.records if 'NOT read' in r.getMessage()]
    assert len(warnings) == 1
    assert 'focus/1' in warnings[0] and 'without a savepoint' in warnings[0]


def test_a_failed_listing_keeps_what_was_known(listed):
    watch = unread.UnreadPartitions(KafkaConnection(client_config=(), client_id='t'), ['entry'])
    listed[0] = [('entry', 0), ('focus', 0), ('entry', 1)]
    assert watch.check() == ['entry/1']
    listed[0] = KafkaConnectionError('broker down')
    assert watch.check() == ['entry/1']


def test_unread_partitions_make_health_unhealthy_and_are_a_gauge():
    status = PipelineStatus(progress('unread-test'), python_read=False)
    status.unread_partitions = ['focus/1']
    healthy, body = status.health()
    assert not healthy
    assert body['unread_partitions'] == ['focus/1']
    gauges = {family.name: family for family in status.collect()}
    assert gauges['coupon_scoring_unread_partitions'].samples[0].value == 1
