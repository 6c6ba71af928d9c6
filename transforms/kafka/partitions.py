"""WatchPartitions: the partitions of the input topics, those added while the pipeline runs too.

In:  PBegin.
Out: unbounded PCollection[PartitionToRead]: each partition of each topic once, with where
     its read starts when the consumer group has no offset for it (``reset``): the
     connection's ``auto_offset_reset`` for the partitions the topic had when the pipeline
     was built, ``earliest`` for any partition found later, so that the records written to
     it before it was found are read too. Every element is timestamped at the minimum
     timestamp, as ``beam.Create``'s elements are (why: below).
State: a splittable DoFn, one element per topic (the topic and its partition count when the
  pipeline was built), whose restriction is the partition numbers not yet handed on,
  [next, inf). Kafka numbers a topic's partitions 0..n-1 and can only add to them, so what
  has been found is a count, and the restriction is that count: checkpointed by Flink,
  carried in each residual by Prism, with no Beam state (on Prism 2.73 updates of Beam
  state were seen lost: transforms/kafka/offsets.py). Each call lists the topic when due (a
  metadata request, at most every ``discovery_s`` per DoFn instance), claims and outputs
  the partitions numbered from the restriction's start up to the count, then checkpoints
  with a resume delay of ``discovery_s``. A listing that fails (broker down, topic
  deleted) is logged and retried at the next due time. Per DoFn instance: the admin
  client, made on first use and dropped after an error, and when each topic is next due.

Why the watermark runs ``AHEAD_OF_WALL_CLOCK`` and the partitions' timestamp is the minimum:
the read's watermark must stay its own estimate (the newest record time, or the wall clock
when idle, minus ``WATERMARK_LAG_SECONDS``), which the event-time stages downstream
(CustomerSessions) wait for; any lag added here would be latency. The read's partitions used
to come from a bounded ``Create``: elements at the minimum timestamp, then a watermark of
+inf. This transform does the same as far as an unbounded one can:

- In Beam's model (and on Flink) a splittable DoFn's output watermark is bounded by its
  input's, this transform's: so its watermark runs far ahead of any record time (the wall
  clock plus 1,000 years, far below the end of the global window, which would close it).
- Prism 2.73 computes a stage's output watermark from its input watermark, which its
  pending and in-progress elements hold at their timestamps, replaced by the estimate the
  SDK reports only while that estimate advances (``updateWatermarks`` in its element
  manager). The read's elements (its partitions and their residuals) are always pending or
  in progress. Timestamped far ahead, they let the read's output watermark jump there
  whenever its estimate did not move, and the stateful stages downstream, which run only
  when their input watermark moves, stopped for good (seen: the warm-up focus event never
  scored). At the minimum timestamp, as ``Create``'s were, they hold the read's input at the
  minimum, and its output follows its estimate, as before.
- Prism 2.73 looks at a stage's new elements only when its upstream watermark moves (after a
  bundle it re-examines the bundle's own stage, and the stages downstream only if that
  stage's output watermark advanced). With a fixed watermark, partitions handed on after
  the first ones waited in front of the read for good (seen: 3 runs of 5). So the watermark
  moves with the wall clock, set at the end of every call.

Outputs behind the watermark are late in Beam's model, but only an expired window drops late
data, and the global window expires at its end.

Why the delay is also kept in the DoFn: Prism 2.73 ignores a resume delay (a 3 s
``defer_remainder`` gave 7,034 calls in 9 s), so each instance lists a topic only when due,
and when called early it sleeps until then, at most ``IDLE_SLEEP_S``, so that it does not
spin a core; Flink honours the delay, and the calls come when due.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, Iterator, NamedTuple, Optional

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import WatermarkEstimatorProvider
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration, Timestamp
from kafka import KafkaAdminClient

from transforms.kafka.connection import KafkaConnection
from transforms.kafka.restrictions import UnboundedRestrictions

_LOGGER = logging.getLogger(__name__)
# How far the watermark runs ahead of the wall clock: ahead of any record time, far below the
# end of the global window (year 294247), which would close it.
AHEAD_OF_WALL_CLOCK = Duration(seconds=1000 * 365 * 24 * 3600)
IDLE_SLEEP_S = 1.0
EARLIEST = 'earliest'
METADATA_WAIT_MS = 10_000  # how long a listing waits for an unreachable broker


class PartitionToRead(NamedTuple):
    """A partition for the read, and where it starts when the group has no offset for it."""

    topic: str
    partition: int
    reset: str  # 'earliest' or 'latest'


def start_policy(number: int, count_at_build: int, configured_reset: str) -> str:
    """Where partition ``number`` starts without a committed offset: as configured for the
    partitions there when the pipeline was built, from its first offset for later ones."""
    return configured_reset if number < count_at_build else EARLIEST


def readable_count(described: dict[str, Any]) -> int:
    """How many partitions of a topic can be read, from its entry in a metadata answer: the
    numbers 0..n-1 all listed with a leader (a partition just added may have none yet, and its
    start offset could not be looked up). A topic error (deleted, not authorized) raises."""
    if described['error_code'] != 0:
        raise LookupError(
            f'metadata of topic {described["topic"]!r}: error code {described["error_code"]}'
        )
    leaders = {p['partition']: p['leader'] for p in described['partitions']}
    count = 0
    while leaders.get(count, -1) >= 0:
        count += 1
    return count


class ListingSchedule:
    """When each topic is next due for a listing (one DoFn instance; ``clock`` in seconds)."""

    def __init__(self, interval_s: float, clock: Optional[Callable[[], float]] = None):
        self._interval_s = interval_s
        self._clock = clock or time.monotonic
        self._due: dict[str, float] = {}

    def wait_s(self, topic: str) -> float:
        """Seconds until ``topic`` is due; 0 when it is (or was never listed here)."""
        return max(0.0, self._due.get(topic, 0.0) - self._clock())

    def listed(self, topic: str) -> None:
        self._due[topic] = self._clock() + self._interval_s


def ahead_of_wall_clock() -> Timestamp:
    return Timestamp.now() + AHEAD_OF_WALL_CLOCK


class _AheadOfWallClock(WatermarkEstimatorProvider):
    """A watermark ``AHEAD_OF_WALL_CLOCK`` from the start; the DoFn moves it on."""

    def initial_estimator_state(self, element, restriction) -> Timestamp:
        return ahead_of_wall_clock()

    def create_watermark_estimator(self, state: Timestamp) -> ManualWatermarkEstimator:
        return ManualWatermarkEstimator(state)


class _WatchPartitionsFn(beam.DoFn, UnboundedRestrictions):
    """Per topic, hands on each partition once, as it is found (see the module docstring)."""

    def __init__(self, connection: KafkaConnection, discovery_s: float):
        super().__init__()
        self._connection = connection
        self._discovery_s = discovery_s

    def initial_restriction(self, topic: tuple[str, int]) -> OffsetRange:
        return OffsetRange(0, sys.maxsize)

    def setup(self) -> None:
        self._admin: Optional[KafkaAdminClient] = None
        self._schedule = ListingSchedule(self._discovery_s)
        self._added = Metrics.counter('partitions', 'added_while_running')
        self._failed = Metrics.counter('partitions', 'listings_failed')

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        topic: tuple[str, int],
        tracker=beam.DoFn.RestrictionParam(),
        watermark=beam.DoFn.WatermarkEstimatorParam(_AheadOfWallClock()),
    ) -> Iterator[beam.window.TimestampedValue]:
        name, count_at_build = topic
        early_s = self._schedule.wait_s(name)
        if early_s > 0:  # Prism 2.73 calls again at once: do not spin
            time.sleep(min(early_s, IDLE_SLEEP_S))
        count = self._list(name) if self._schedule.wait_s(name) == 0 else None
        for number in range(tracker.current_restriction().start, count or 0):
            if not tracker.try_claim(number):
                return
            if number >= count_at_build:
                self._added.inc()
                _LOGGER.info(
                    'partition %d of %s added: reading it from its first offset', number, name
                )
            reset = start_policy(number, count_at_build, self._connection.auto_offset_reset)
            yield beam.window.TimestampedValue(PartitionToRead(name, number, reset), MIN_TIMESTAMP)
        watermark.set_watermark(max(watermark.current_watermark(), ahead_of_wall_clock()))
        tracker.defer_remainder(Duration(seconds=self._discovery_s))

    def _list(self, topic: str) -> Optional[int]:
        """How many partitions of ``topic`` can be read now; None if the listing failed."""
        self._schedule.listed(topic)
        try:
            if self._admin is None:
                self._admin = self._connection.admin('partitions', METADATA_WAIT_MS)
            (described,) = self._admin.describe_topics([topic])
            return readable_count(described)
        except Exception as error:  # pylint: disable=broad-except  # kafka-python raises more than KafkaError
            self._failed.inc()
            _LOGGER.warning(
                'listing the partitions of %s failed (retried in %g s): %s',
                topic,
                self._discovery_s,
                error,
            )
            self._close()
            return None

    def _close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def teardown(self) -> None:
        self._close()


class WatchPartitions(beam.PTransform):
    """The partitions of the topics of ``counts_at_build`` (topic -> its partition count when
    the pipeline was built), those there then and those added later, found within
    ``discovery_s`` (see the module docstring)."""

    def __init__(
        self, connection: KafkaConnection, counts_at_build: dict[str, int], discovery_s: float
    ):
        super().__init__()
        self._connection = connection
        self._counts_at_build = counts_at_build
        self._discovery_s = discovery_s

    def expand(self, begin: beam.pvalue.PBegin) -> beam.PCollection[PartitionToRead]:
        return (
            begin
            | 'Topics' >> beam.Create(sorted(self._counts_at_build.items()))
            | 'ListPartitions'
            >> beam.ParDo(_WatchPartitionsFn(self._connection, self._discovery_s))
        )
