"""UnreadPartitions: partitions added to the input topics after a KafkaIO read started.

KafkaIO's read (KAFKA_IO xlang and xlang-read) lists the topics' partitions once, when the job
starts: Beam 2.73 discovers partitions while running only in the splittable-DoFn form of the
read, which Flink's native source (``use_deprecated_read``) replaces, and which Prism runs
without it here. A partition added later is not read by the running job, and a restore from a
checkpoint or savepoint keeps the read's partitions as they were. So the driver lists the
partitions at every metrics interval and reports one added since the start: a WARNING naming
it and the operator's step, ``/health`` unhealthy with ``unread_partitions``, and the gauge
``coupon_scoring_unread_partitions``.

The operator's step: stop the job and start it again without a savepoint. The read then starts
where KafkaIO last committed (the last completed checkpoint's offsets) and the added partitions
at their first offset (transforms.kafka.connection.start_offsets, every_partition): nothing is
lost, what came after that checkpoint is read again.

State: the partitions at the start, those reported, and an admin client kept for the listings.
"""

from __future__ import annotations

import logging

from kafka.errors import KafkaError

from transforms.kafka import KafkaConnection, described_partitions

_LOGGER = logging.getLogger(__name__)
STEP = (
    'stop the job and start it again without a savepoint: the added partitions are read '
    'from their first offset, the others from the offsets committed at the last checkpoint'
)


class UnreadPartitions:
    """The input partitions added since the read started."""

    def __init__(self, connection: KafkaConnection, topics: list[str]):
        self._admin = connection.admin('unread')
        self._topics = topics
        self._at_start = set(described_partitions(self._admin, topics))
        self.unread: list[str] = []

    def check(self) -> list[str]:
        """Lists the partitions again; logs each one added since the start, once."""
        try:
            now = set(described_partitions(self._admin, self._topics))
        except (KafkaError, ValueError) as error:
            _LOGGER.warning('could not list the input partitions: %s', error)
            return self.unread
        added = sorted(f'{tp.topic}/{tp.partition}' for tp in now - self._at_start)
        for name in sorted(set(added) - set(self.unread)):
            _LOGGER.warning('partition %s was added while running and is NOT read: %s', name, STEP)
        self.unread = added
        return added

    def close(self) -> None:
        self._admin.close()
