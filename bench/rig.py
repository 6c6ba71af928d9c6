"""The bench's own outside world: a Kafka broker, the central and the scorer stand-ins.

The broker listens on its own port (default 19292, controller 19293) with its data under
``.local/bench/kafka-<port>`` (a bench run on another port does not share it); the stand-ins
take free ports and keep their files under ``.local/bench/services-*``. A broker already running on that port from an earlier bench run
is reused (and left running), as :class:`standins.kafka.broker.KafkaBroker` does.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests
from kafka import KafkaAdminClient

from standins.kafka.broker import KafkaBroker, create_topics
from standins.monitor import OffsetReader, Topics
from standins.scorer.server import PREDICT_PATH
from standins.services import REPO_ROOT, LocalServices
from tests.integration.scenario import IndependentModel

DEFAULT_KAFKA_PORT = 19292
LOCAL_DIR = REPO_ROOT / '.local' / 'bench'
RESULTS_DIR = REPO_ROOT / 'bench' / 'results'
PARTITIONS = 3


@dataclass(frozen=True)
class ScorerCounts:
    """The scorer stand-in's counters (GET /metrics)."""

    requests: int
    instances: int
    rejected: int

    def __sub__(self, earlier: ScorerCounts) -> ScorerCounts:
        return ScorerCounts(
            self.requests - earlier.requests,
            self.instances - earlier.instances,
            self.rejected - earlier.rejected,
        )


@dataclass
class Rig:
    """A running broker and stand-ins, and the Kafka book-keeping the bench needs."""

    kafka: KafkaBroker
    services: LocalServices
    offsets: OffsetReader
    scorer_latency_ms: int = 0
    central_latency_ms: int = 0

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    @functools.cached_property
    def model(self) -> IndependentModel:
        """The integration tests' independent model of the predictions (the central's database and
        the scorer's weights), which says which focus events have coupons at or above 0.2."""
        return IndependentModel(self.services.db_path)

    def has_coupons(self, customer_id: int, department_id: int) -> bool:
        """Whether a focus event of this customer in this department yields prediction messages."""
        return self.model.has_department(department_id) and bool(
            self.model.best_coupons(customer_id, department_id)
        )

    def fresh_topics(self, prefix: str) -> Topics:
        """Four new topics (entry, focus, output, dead letters) named ``bench.<prefix>.<random>.*``."""
        base = f'bench.{prefix}.{uuid.uuid4().hex[:6]}'
        topics = Topics(f'{base}.entry', f'{base}.focus', f'{base}.output', f'{base}.deadletters')
        create_topics(self.bootstrap_servers, topics.names, partitions=PARTITIONS)
        return topics

    def delete_topics(self, topics: Topics) -> None:
        """Delete a point's topics, so the broker does not grow over a run."""
        self._delete(lambda admin: list(topics.names))

    def delete_topics_containing(self, text: str) -> None:
        """Delete every topic whose name contains ``text`` (e.g. a system's own state topics)."""
        self._delete(lambda admin: [name for name in admin.list_topics() if text in name])

    def _delete(self, names: Callable[[KafkaAdminClient], list[str]]) -> None:
        """Delete the topics ``names`` picks (none: nothing)."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id='bench-admin')
        try:
            if chosen := names(admin):
                admin.delete_topics(chosen, timeout_ms=10_000)
        finally:
            admin.close()
            self.offsets.reset()  # its consumer would keep asking for the deleted topics' metadata

    def scorer_counts(self) -> ScorerCounts:
        """The scorer's request, instance and rejection counters now."""
        base_url = self.services.scorer_url.removesuffix(PREDICT_PATH)
        counts = requests.get(f'{base_url}/metrics', timeout=5).json()
        return ScorerCounts(counts['requests'], counts['instances'], counts['rejected'])

    def central_requests(self) -> int:
        """Data requests the central has answered so far (contexts and catalogues)."""
        return requests.get(f'{self.services.central_url}/metrics', timeout=5).json()['requests']

    def consumer_lag(self, group: str, topics: Topics) -> int:
        """End offsets of the input topics minus the group's committed offsets (none = 0)."""
        partitions = self.offsets.partitions([topics.entry, topics.focus])
        ends = self.offsets.end_offsets([tp for tps in partitions.values() for tp in tps])
        committed = self.offsets.committed(group)
        return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())

    def end_offsets_total(self, topic: str) -> int:
        """Records ever written to ``topic`` (the sum of its partitions' end offsets)."""
        partitions = self.offsets.partitions([topic]).get(topic, [])
        return sum(self.offsets.end_offsets(partitions).values())


@contextlib.contextmanager
def running_rig(kafka_port: int = DEFAULT_KAFKA_PORT, scorer_latency_ms: int = 0) -> Iterator[Rig]:
    """Start the broker (or reuse the bench's running one) and the stand-ins; stop what started."""
    broker = KafkaBroker(
        port=kafka_port, data_dir=LOCAL_DIR / f'kafka-{kafka_port}', log_dir=LOCAL_DIR / 'logs'
    )
    with (
        broker,
        services_with(scorer_latency_ms) as services,
        _rig(broker, services, scorer_latency_ms) as rig,
    ):
        yield rig


@contextlib.contextmanager
def with_latency(rig: Rig, scorer_latency_ms: int, central_latency_ms: int = 0) -> Iterator[Rig]:
    """The same broker with a second pair of stand-ins that wait this long per request."""
    with (
        services_with(scorer_latency_ms, central_latency_ms) as services,
        _rig(rig.kafka, services, scorer_latency_ms, central_latency_ms) as other,
    ):
        yield other


@contextlib.contextmanager
def services_with(scorer_latency_ms: int, central_latency_ms: int = 0) -> Iterator[LocalServices]:
    """The central and the scorer on free ports, files under
    ``.local/bench/services-<scorer latency>ms[-central-<central latency>ms]``."""
    central = f'-central-{central_latency_ms}ms' if central_latency_ms else ''
    local_dir = LOCAL_DIR / f'services-{scorer_latency_ms}ms{central}'
    with LocalServices(
        central_port=0,
        scorer_port=0,
        scorer_latency_ms=scorer_latency_ms,
        central_latency_ms=central_latency_ms,
        local_dir=local_dir,
    ) as services:
        yield services


@contextlib.contextmanager
def _rig(
    broker: KafkaBroker,
    services: LocalServices,
    scorer_latency_ms: int,
    central_latency_ms: int = 0,
) -> Iterator[Rig]:
    """A rig over running parts; its Kafka clients are closed on exit."""
    offsets = OffsetReader(broker.bootstrap_servers)
    rig = Rig(broker, services, offsets, scorer_latency_ms, central_latency_ms)
    try:
        yield rig
    finally:
        rig.offsets.reset()
