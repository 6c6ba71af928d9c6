"""Graceful drain: stop reading, let every record read end and be committed, then stop.

``RunProgress`` is what the read and the committer of one pipeline run tell each other
through the worker process's memory (as transforms.kafka.offsets keeps its frontiers there):
per topic-partition, the next offset the read will fetch and the offset last committed
to the group. The driver asks for a drain (``request``) on SIGTERM or Ctrl-C; the read
then stops fetching (it keeps advancing its watermark, so timers downstream still fire)
and the driver waits until ``in_flight()`` is 0: every record read has ended (published,
dead-lettered, stored, counted) and its offset is committed. A restart then repeats
nothing.

State: a registry of RunProgress by run id, in the process. It reaches the DoFns where
they run in the driver's process (Prism's LOOPBACK worker); with workers in other
processes (Flink's PROCESS environment) nothing is drained, and the driver's wait ends
at its timeout (then it cancels, as before: a restart repeats what was in flight).
"""

from __future__ import annotations

import threading
import time
from typing import Optional

TopicPartition = tuple[str, int]


class RunProgress:
    """Read and committed offsets of one run, and whether it is draining."""

    def __init__(self):
        self._lock = threading.Lock()
        self._draining = threading.Event()
        self._reading = threading.Event()
        self._last_read_s: Optional[float] = None
        self._read: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def read(self, partition: TopicPartition, start: int, next_offset: int) -> None:
        """The read fetched ``partition`` from ``start`` up to ``next_offset``."""
        self._reading.set()
        self._last_read_s = time.monotonic()
        with self._lock:
            self._committed.setdefault(partition, start)
            self._read[partition] = max(self._read.get(partition, start), next_offset)

    def committed(self, partition: TopicPartition, offset: int) -> None:
        with self._lock:
            self._committed[partition] = max(self._committed.get(partition, offset), offset)

    def in_flight(self) -> int:
        """How many offsets were read and are not committed yet."""
        with self._lock:
            return sum(
                max(0, next_offset - self._committed[partition])
                for partition, next_offset in self._read.items()
            )

    def wait_reading(self, timeout_s: float) -> bool:
        """Whether the read has polled, waiting up to ``timeout_s`` for its first poll."""
        return self._reading.wait(timeout_s)

    def seconds_since_read(self) -> Optional[float]:
        """How long ago the read last polled; None before its first poll."""
        last = self._last_read_s
        return None if last is None else time.monotonic() - last

    def request(self) -> None:
        self._draining.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()


_RUNS: dict[str, RunProgress] = {}
_RUNS_LOCK = threading.Lock()


def progress(run_id: str) -> RunProgress:
    """The progress of run ``run_id`` in this process."""
    with _RUNS_LOCK:
        return _RUNS.setdefault(run_id, RunProgress())
