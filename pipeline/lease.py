"""One group, one reader: the lease that lets one process read a GROUP_ID's topics.

The read assigns itself every partition of the input topics (it is no member of GROUP_ID:
it commits there outside group membership), so two ``python -m pipeline`` with one GROUP_ID
would both read everything and publish every prediction twice. Before the pipeline starts,
the driver takes this lease; a process that cannot is a hot standby, and starts its pipeline
as soon as the lease comes to it.

In:  the Kafka connection, GROUP_ID, the input topics, the lease timeout
     (LEASE_TIMEOUT_SECONDS).
Out: ``GroupLease.acquire()`` returns once this process holds the lease; meanwhile it logs
     that it stands by and who holds the lease. ``lost`` is set (``why`` says why), and the
     ``when_lost`` fences are called, when the process no longer holds it while running;
     ``release()`` gives it up.
State: one kafka-python consumer in the group ``<GROUP_ID>.lease``, subscribed to the input
     topics and polled by a thread of its own (heartbeats, rebalances); it never fetches (every
     partition it is given is paused). Whether this process holds the lease, and who holds it.

Kafka's own group membership does the work: no extra service and no extra topic. The group
is ``<GROUP_ID>.lease``, not GROUP_ID itself, because the broker refuses the pipeline's
offset commits (generation -1) to a group with live members. ``OneReaderAssignor`` gives
every partition to one member, so ``kafka-consumer-groups.sh --describe --group
<GROUP_ID>.lease`` names the active process. The assignment is sticky: every member tells
in its metadata whether it holds the lease, and a holder keeps it through the rebalances a
joining standby causes. It changes hands when the holder leaves (``release()``, after its
pipeline has drained) or when the broker expires it (killed, frozen, cut off: after the
session timeout, LEASE_TIMEOUT_SECONDS).

Fencing: a holder that is told another member holds the lease, or that has heard nothing
from the group coordinator for the session timeout while connected to it (the time after
which the broker expires it: ``CoordinatorSilence``), stops its read at once (a
``when_lost`` fence, in the lease's thread) and sets ``lost``; the driver then cancels its
pipeline without a drain: what it had read and not committed is the new holder's to read.
A standby needs a heartbeat interval (1 s) and a pipeline start (seconds) more before it
reads, so the two rarely read at once; a process that wakes from a freeze can publish what
its read fetched in that instant again (repeats, with the same focus_event_id). Nothing is
lost: offsets are committed once their records have ended. The fence is by time, not by a
token the broker checks on writes (a transactional producer's epoch; docs/faults.md says why
there are no transactions). ``since`` is each host's wall clock: hosts whose clocks differ by
more than the lease timeout could settle two stale claims the wrong way round.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable, Mapping, Optional

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from kafka.coordinator.protocol import ConsumerProtocol

from transforms.kafka import STARTUP_BROKER_WAIT_MS, KafkaConnection, list_partitions

_LOGGER = logging.getLogger(__name__)
# The consumer protocol's member metadata and assignment, as kafka-python names their structs.
ConsumerProtocolMemberMetadata = ConsumerProtocol[0].METADATA
ConsumerProtocolMemberAssignment = ConsumerProtocol[0].ASSIGNMENT
LEASE_GROUP_SUFFIX = '.lease'
_POLL_MS = 200  # how often the lease's thread polls (heartbeats run in kafka-python's own)
_RELEASE_WAIT_S = 10.0


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What a member of the lease group tells the others when it joins: which process it is
    (``token``, unique per process; ``name``, for people), whether it holds the lease, and
    since when it runs or waits (seconds since the epoch)."""

    token: str
    name: str
    holding: bool
    since: float

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def decode(cls, member_id: str, user_data: bytes) -> 'Candidate':
        """A member's candidate; a member that is not one of ours (undecodable metadata) is
        a candidate that never gets the lease while one of ours is there."""
        try:
            return cls(**json.loads(user_data))
        except (TypeError, ValueError):
            return cls(token='', name=member_id, holding=False, since=float('inf'))


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who the group's leader gave the lease to; sent to every member in its assignment."""

    token: str
    name: str

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def decode(cls, user_data: bytes) -> Optional['Holder']:
        try:
            return cls(**json.loads(user_data))
        except (TypeError, ValueError):
            return None


def choose_holder(candidates: Mapping[str, Candidate]) -> str:
    """The member id that gets the lease: a member that holds it keeps it; else the member
    waiting longest. If several say they hold it, the latest to get it keeps it: the lease
    went to it because the broker had expired the others (one that was frozen, or cut off,
    rejoins with a stale claim). Ties go to the smaller member id, so every leader decides
    alike."""
    holders = [member for member, candidate in candidates.items() if candidate.holding]
    if holders:
        return min(holders, key=lambda member: (-candidates[member].since, member))
    return min(candidates, key=lambda member: (candidates[member].since, member))


class OneReaderAssignor(AbstractPartitionAssignor):
    """A kafka-python partition assignor that gives every partition of the subscribed topics
    to one member (``choose_holder``) and nothing to the others, and tells every member who
    that is (its assignment's user data). ``candidate()`` is this process, as it joins;
    ``on_holder(holder)`` is called with each assignment this process receives."""

    name = 'one-reader'
    version = 0

    def __init__(
        self, candidate: Callable[[], Candidate], on_holder: Callable[[Optional[Holder]], None]
    ):
        self._candidate = candidate
        self._on_holder = on_holder

    def metadata(self, topics) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(
            self.version, sorted(topics), self._candidate().encode()
        )

    def assign(self, cluster, members) -> dict[str, ConsumerProtocolMemberAssignment]:
        candidates = {
            member: Candidate.decode(member, metadata.user_data)
            for member, metadata in members.items()
        }
        holder = choose_holder(candidates)
        chosen = Holder(candidates[holder].token, candidates[holder].name).encode()
        partitions = sorted(
            (topic, sorted(cluster.partitions_for_topic(topic) or ()))
            for topic in members[holder].subscription
        )
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version, partitions if member == holder else [], chosen
            )
            for member in members
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self._on_holder(Holder.decode(assignment.user_data))


class _PauseAssigned(ConsumerRebalanceListener):
    """The lease consumer never fetches: it pauses what it is given and gives it a position
    (0, never fetched from), so that kafka-python looks up no offset for it either."""

    def __init__(self, consumer: KafkaConsumer):
        self._consumer = consumer

    def on_partitions_revoked(self, revoked) -> None:
        pass

    def on_partitions_assigned(self, assigned) -> None:
        self._consumer.pause(*assigned)
        for partition in assigned:
            self._consumer.seek(partition, 0)


class CoordinatorSilence:
    """How long the group coordinator has not answered while this member was connected to it:
    the time after which the broker may have expired the member and given the lease away.

    Counted only while connected: a frozen process wakes with its connection up and the whole
    freeze counted; a member cut off without notice stays "connected" until its requests time
    out; but a broker that was stopped refuses the connection, and nobody can be given the
    lease while it is down, so an outage alone never fences (the member rejoins when the
    broker is back, and a stale claim loses to a later holder: ``choose_holder``).
    State: the silence so far, the time of the last tick, the last confirmation seen.
    """

    def __init__(self):
        self._silent_s = 0.0
        self._ticked_at: Optional[float] = None
        self._confirmed_at: Optional[float] = None

    def tick(self, now: float, confirmed_at: float, connected: bool) -> float:
        """The silence at ``now``: ``confirmed_at``, when the coordinator last answered (a
        heartbeat, a join); ``connected``, whether this member is connected to it now."""
        if confirmed_at != self._confirmed_at:
            self._silent_s, self._confirmed_at = max(0.0, now - confirmed_at), confirmed_at
        elif connected and self._ticked_at is not None:
            self._silent_s += now - self._ticked_at
        self._ticked_at = now
        return self._silent_s


def coordinator_state(consumer: KafkaConsumer) -> tuple[float, bool]:
    """When the group coordinator last confirmed this member (answered a heartbeat, completed
    a join; now while a join is in flight: the broker expires no member that waits for a
    join's answer, and a join that gets none fails after the request timeout), and whether
    the member is connected to it. kafka-python 2.3 has no public view of these: its
    coordinator's state is read here only."""
    coordinator = consumer._coordinator  # pylint: disable=protected-access
    if coordinator.rebalance_in_progress():
        return time.time(), True
    heartbeat = coordinator.heartbeat
    return max(heartbeat.last_receive, heartbeat.last_reset), coordinator.connected()


class GroupLease:
    """The lease of one GROUP_ID (see the module docstring). Its thread owns the consumer."""

    def __init__(self, connection: KafkaConnection, topics: list[str], timeout_s: float):
        self.group_id = f'{connection.group_id}{LEASE_GROUP_SUFFIX}'
        self.lost = threading.Event()
        self.why = ''
        self._connection = connection
        self._topics = topics
        self._timeout_s = timeout_s
        self._role = f'lease-{socket.gethostname()}-{os.getpid()}'  # its client id's suffix
        self._me = Candidate(
            token=uuid.uuid4().hex,
            name=f'{connection.client_id}-{self._role}',
            holding=False,
            since=time.time(),
        )
        self._holder: Optional[Holder] = None
        self._acquired = threading.Event()
        self._closing = threading.Event()
        self._failure: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._fences: list[Callable[[], None]] = []

    @property
    def name(self) -> str:
        """This process as the other members and the logs name it: client id, host, pid."""
        return self._me.name

    @property
    def holding(self) -> bool:
        """Whether this process holds the lease now."""
        return self._me.holding

    def acquire(self) -> None:
        """Joins the lease group and returns once this process holds the lease, standing by
        until then. Raises what stopped it: ValueError for a missing input topic, KafkaError
        for an unreachable broker or a refused join, KeyboardInterrupt for SIGTERM or Ctrl-C."""
        list_partitions(self._connection, self._topics)  # a missing topic: fail now, not later
        consumer = self._member()
        consumer.subscribe(self._topics, listener=_PauseAssigned(consumer))
        self._thread = threading.Thread(
            target=self._keep, args=(consumer,), name='group-lease', daemon=True
        )
        self._thread.start()
        while not self._acquired.wait(0.5):
            if self._failure is not None:
                raise self._failure
        _LOGGER.info('holding the lease of group %s as %s', self.group_id, self.name)

    def when_lost(self, fence: Callable[[], None]) -> None:
        """``fence()`` is called at once, in the lease's thread, if the lease is lost: what must
        stop before the driver's loop notices (the read's fetches)."""
        self._fences.append(fence)

    def release(self) -> None:
        """Leaves the lease group, so that a standby takes over at once."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(_RELEASE_WAIT_S)
        if self._me.holding:
            _LOGGER.info('released the lease of group %s', self.group_id)

    def _member(self) -> KafkaConsumer:
        timeout_ms = int(self._timeout_s * 1000)
        return self._connection.consumer(
            self._role,
            broker_wait_ms=STARTUP_BROKER_WAIT_MS,
            group_id=self.group_id,
            partition_assignment_strategy=[OneReaderAssignor(self._candidate, self._on_holder)],
            session_timeout_ms=timeout_ms,
            heartbeat_interval_ms=min(timeout_ms // 3, 1000),  # a standby sees a change soon
            max_poll_interval_ms=timeout_ms,  # the rebalance timeout: members poll all along
            request_timeout_ms=timeout_ms + 5000,  # above the rebalance timeout, as it must be
        )

    def _candidate(self) -> Candidate:
        return self._me

    def _keep(self, consumer: KafkaConsumer) -> None:
        """The thread: polls (joins, rebalances), fences on silence, leaves on release."""
        silence = CoordinatorSilence()
        try:
            while not self._closing.is_set():
                consumer.poll(timeout_ms=_POLL_MS)
                silent_s = silence.tick(time.time(), *coordinator_state(consumer))
                if self._me.holding and silent_s > self._timeout_s:
                    self._lose(
                        f'no answer from the group coordinator for {silent_s:.1f} s '
                        f'(LEASE_TIMEOUT_SECONDS={self._timeout_s:g}): the broker may have '
                        'given the lease to a standby'
                    )
        except Exception as error:  # raised by acquire() while standing by; fences if holding
            self._failure = error
            self._lose(f'the lease consumer failed: {error!r}')
        finally:
            consumer.close(autocommit=False)

    def _on_holder(self, holder: Optional[Holder]) -> None:
        """Called in the thread with every assignment: takes, keeps or loses the lease. A
        process that lost it stops, and does not take it again."""
        if self.lost.is_set():
            return
        if holder is not None and holder.token == self._me.token:
            if not self._me.holding:
                self._me = dataclasses.replace(self._me, holding=True, since=time.time())
                self._acquired.set()
        elif self._me.holding:
            self._lose(f'the group gave the lease to {_named(holder)}')
        elif holder != self._holder:
            _LOGGER.info(
                'standing by: group %s is read by %s; this process (%s) takes over when it '
                'stops (lease group %s)',
                self._connection.group_id,
                _named(holder),
                self.name,
                self.group_id,
            )
        self._holder = holder

    def _lose(self, why: str) -> None:
        if not self._me.holding:
            return
        self._me = dataclasses.replace(self._me, holding=False)
        self.why = why
        _LOGGER.error('lost the lease of group %s: %s', self.group_id, why)
        for fence in self._fences:
            fence()
        self.lost.set()


def _named(holder: Optional[Holder]) -> str:
    return holder.name if holder else 'a member that is not a coupon-scoring pipeline'


class NoLease:
    """Without a GROUP_ID there is nothing to share: every process reads, as it asked."""

    def __init__(self):
        self.lost = threading.Event()  # never set
        self.why = ''

    def acquire(self) -> None:
        pass

    def when_lost(self, fence: Callable[[], None]) -> None:
        pass

    def release(self) -> None:
        pass


def group_lease(
    connection: KafkaConnection, topics: list[str], timeout_s: float
) -> GroupLease | NoLease:
    """The lease of ``connection``'s group over ``topics``; a NoLease without a group."""
    if not connection.group_id:
        return NoLease()
    return GroupLease(connection, topics, timeout_s)
