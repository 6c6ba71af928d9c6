"""pipeline.lease: who gets the group's lease, and what a process does with each assignment.

The assignor's decision and the lease's reaction are pure logic, tested here; the lease
between real processes on a real broker is tests/integration/test_group_lease.py.
"""

from __future__ import annotations

import logging
import os

from kafka.coordinator.subscription import Subscription

from pipeline.lease import (
    Candidate,
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
    CoordinatorSilence,
    GroupLease,
    Holder,
    NoLease,
    OneReaderAssignor,
    choose_holder,
    group_lease,
)
from transforms.kafka.connection import KafkaConnection

CONNECTION = KafkaConnection(
    client_config=(('bootstrap_servers', ['127.0.0.1:1']),),
    client_id='scoring',
    group_id='coupon-scoring',
)


def candidate(token: str, holding: bool = False, since: float = 100.0) -> Candidate:
    return Candidate(token=token, name=f'process-{token}', holding=holding, since=since)


class Cluster:
    """The one method of kafka-python's ClusterMetadata an assignor asks."""

    def __init__(self, partitions: dict[str, set[int]]):
        self._partitions = partitions

    def partitions_for_topic(self, topic: str):
        return self._partitions.get(topic)


def joined(*candidates: Candidate, topics=('entry', 'focus')) -> dict:
    """Member metadata as the leader decodes it, member ids m-<token>."""
    return {
        f'm-{c.token}': Subscription(
            ConsumerProtocolMemberMetadata(0, list(topics), c.encode()), None
        )
        for c in candidates
    }


def test_the_member_holding_the_lease_keeps_it_whoever_waits_longer():
    candidates = {
        'm-a': candidate('a', since=200.0),
        'm-b': candidate('b', holding=True, since=300.0),
        'm-c': candidate('c', since=100.0),
    }

    assert choose_holder(candidates) == 'm-b'


def test_without_a_holder_the_member_waiting_longest_gets_the_lease():
    candidates = {'m-a': candidate('a', since=200.0), 'm-b': candidate('b', since=150.0)}

    assert choose_holder(candidates) == 'm-b'


def test_two_holders_the_latest_to_get_the_lease_keeps_it_the_stale_claim_loses():
    candidates = {
        'm-a': candidate('a', holding=True, since=400.0),  # expired while frozen, rejoined
        'm-b': candidate('b', holding=True, since=500.0),  # got the lease after that
    }

    assert choose_holder(candidates) == 'm-b'


def test_silence_is_counted_from_the_last_answer_while_connected():
    silence = CoordinatorSilence()

    assert silence.tick(100.0, confirmed_at=99.0, connected=True) == 1.0
    assert silence.tick(105.0, confirmed_at=99.0, connected=True) == 6.0
    assert silence.tick(106.0, confirmed_at=105.5, connected=True) == 0.5


def test_a_freeze_counts_whole_on_waking():
    silence = CoordinatorSilence()
    silence.tick(100.0, confirmed_at=100.0, connected=True)

    assert silence.tick(113.0, confirmed_at=100.0, connected=True) == 13.0


def test_a_broker_refusing_connections_stops_the_count_until_it_is_back():
    silence = CoordinatorSilence()
    silence.tick(100.0, confirmed_at=100.0, connected=True)
    for now in range(101, 130):  # the broker stopped for 30 s
        silent_s = silence.tick(float(now), confirmed_at=100.0, connected=False)

    assert silent_s == 0.0
    assert silence.tick(130.5, confirmed_at=100.0, connected=True) == 1.5  # since the last tick
    assert silence.tick(131.0, confirmed_at=130.75, connected=True) == 0.25


def test_ties_go_to_the_smaller_member_id_whatever_the_order():
    first = {'m-b': candidate('b'), 'm-a': candidate('a')}
    second = {'m-a': candidate('a'), 'm-b': candidate('b')}

    assert choose_holder(first) == choose_holder(second) == 'm-a'


def test_a_member_that_is_not_ours_never_gets_the_lease_while_one_of_ours_is_there():
    candidates = {
        'm-other': Candidate.decode('m-other', b'not json'),
        'm-a': candidate('a', since=1e12),
    }

    assert choose_holder(candidates) == 'm-a'


def test_assign_gives_every_partition_to_the_holder_and_names_it_to_everyone():
    assignor = OneReaderAssignor(lambda: candidate('x'), lambda holder: None)
    cluster = Cluster({'entry': {2, 0, 1}, 'focus': {1, 0}})

    assigned = assignor.assign(
        cluster, joined(candidate('a', since=1.0), candidate('b', holding=True, since=2.0))
    )

    assert assigned['m-b'].assignment == [('entry', [0, 1, 2]), ('focus', [0, 1])]
    assert assigned['m-a'].assignment == []
    for assignment in assigned.values():
        assert Holder.decode(assignment.user_data) == Holder('b', 'process-b')


def test_assign_survives_a_topic_without_metadata():
    assignor = OneReaderAssignor(lambda: candidate('x'), lambda holder: None)

    assigned = assignor.assign(Cluster({'entry': {0}}), joined(candidate('a')))

    assert assigned['m-a'].assignment == [('entry', [0]), ('focus', [])]


def test_metadata_carries_this_process_as_it_is_when_it_joins():
    me = {'now': candidate('a')}
    assignor = OneReaderAssignor(lambda: me['now'], lambda holder: None)
    me['now'] = candidate('a', holding=True)

    metadata = assignor.metadata({'focus', 'entry'})

    assert metadata.topics == ['entry', 'focus']
    assert Candidate.decode('m-a', metadata.user_data) == candidate('a', holding=True)


def test_on_assignment_hands_over_the_holder_it_names():
    seen = []
    assignor = OneReaderAssignor(lambda: candidate('x'), seen.append)

    assignor.on_assignment(ConsumerProtocolMemberAssignment(0, [], Holder('b', 'B').encode()))
    assignor.on_assignment(ConsumerProtocolMemberAssignment(0, [], b''))

    assert seen == [Holder('b', 'B'), None]


def lease_named(token: str) -> tuple[GroupLease, Holder]:
    """A lease (no broker contacted) and the Holder that names it."""
    lease = GroupLease(CONNECTION, ['entry', 'focus'], timeout_s=10.0)
    me = lease._candidate()
    lease._me = Candidate(token, me.name, me.holding, me.since)
    return lease, Holder(token, lease.name)


def test_an_assignment_naming_this_process_acquires_the_lease_and_says_so_when_joining():
    lease, me = lease_named('me')

    lease._on_holder(me)

    assert lease._acquired.is_set()
    assert lease.holding
    assert not lease.lost.is_set()


def test_a_holder_named_again_after_a_rebalance_keeps_the_lease():
    lease, me = lease_named('me')
    lease._on_holder(me)
    since = lease._candidate().since

    lease._on_holder(me)

    assert lease._candidate().since == since
    assert not lease.lost.is_set()


def test_a_holder_told_another_process_holds_the_lease_loses_it_and_says_to_whom(caplog):
    lease, me = lease_named('me')
    lease._on_holder(me)

    with caplog.at_level(logging.ERROR, logger='pipeline.lease'):
        lease._on_holder(Holder('other', 'scoring-lease-host2-42'))

    assert lease.lost.is_set()
    assert 'scoring-lease-host2-42' in lease.why
    assert not lease.holding
    assert 'lost the lease' in caplog.text


def test_losing_the_lease_calls_the_fences_before_the_driver_is_told():
    lease, me = lease_named('me')
    told = []
    lease.when_lost(lambda: told.append(lease.lost.is_set()))
    lease._on_holder(me)

    lease._on_holder(Holder('other', 'B'))

    assert told == [False]
    assert lease.lost.is_set()


def test_a_process_that_lost_the_lease_does_not_take_it_again():
    lease, me = lease_named('me')
    lease._on_holder(me)
    lease._on_holder(Holder('other', 'B'))

    lease._on_holder(me)

    assert not lease.holding


def test_a_standby_names_the_holder_once_per_holder(caplog):
    lease, _ = lease_named('me')
    active = Holder('other', 'scoring-lease-host1-7')

    with caplog.at_level(logging.INFO, logger='pipeline.lease'):
        lease._on_holder(active)
        lease._on_holder(active)

    standing_by = [r.getMessage() for r in caplog.records if 'standing by' in r.getMessage()]
    assert len(standing_by) == 1
    assert 'scoring-lease-host1-7' in standing_by[0]
    assert 'coupon-scoring.lease' in standing_by[0]
    assert not lease._acquired.is_set()
    assert not lease.lost.is_set()


def test_the_lease_group_is_beside_the_pipelines_group_and_names_host_and_pid():
    lease = group_lease(CONNECTION, ['entry', 'focus'], 10.0)

    assert lease.group_id == 'coupon-scoring.lease'
    assert lease.name.startswith('scoring-lease-')
    assert lease.name.endswith(f'-{os.getpid()}')


def test_without_a_group_id_there_is_no_lease_to_wait_for():
    lease = group_lease(KafkaConnection(client_config=(), client_id='x'), ['entry'], 10.0)

    assert isinstance(lease, NoLease)
    lease.acquire()
    assert not lease.lost.is_set()
    lease.release()
