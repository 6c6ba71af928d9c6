"""Where the service's Flink job stops and resumes: the savepoint of its last stop.

A stop of ``python -m pipeline --runner=FlinkRunner`` (Ctrl-C, SIGTERM) with a KafkaIO read
(whose offsets live in Flink's state) is Flink's stop-with-savepoint (``FlinkJob``): the
savepoint goes into ``FLINK_SAVEPOINT_DIR`` (default ``.local/flink-savepoints`` of this
checkout, a path the JobManager must reach) and its location into ``SavepointRecord``'s file,
one per consumer group. The next start of that group on Flink resumes from it
(``--savepoint_path``, unless given) and, once the job runs, forgets it: a later start without
a stop of its own (after a crash) resumes from the group's committed offsets instead, which
KafkaIO commits at each completed checkpoint.

State: ``.local/state/flink-savepoint-<GROUP_ID>`` holding the location.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Optional

REPO = Path(__file__).resolve().parents[2]
_LOGGER = logging.getLogger(__name__)


def savepoint_directory(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get('FLINK_SAVEPOINT_DIR') or str(REPO / '.local' / 'flink-savepoints')


class SavepointRecord:
    """The location of the group's last stop's savepoint, if any."""

    def __init__(self, group_id: Optional[str]):
        self.path = REPO / '.local' / 'state' / f'flink-savepoint-{group_id or "no-group"}'

    def location(self) -> Optional[str]:
        return self.path.read_text().strip() or None if self.path.exists() else None

    def remember(self, location: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(location + '\n')
        _LOGGER.info('stopped with savepoint %s: the next start resumes from it', location)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


def resuming(argv: list[str], reads_with_kafkaio: bool, group_id: Optional[str]) -> list[str]:
    """``argv`` plus ``--savepoint_path`` of the group's last stop, on Flink with a KafkaIO
    read, unless the command line names a savepoint itself."""
    on_flink = any(arg in ('--runner=FlinkRunner', 'FlinkRunner') for arg in argv)
    given = any(arg.startswith('--savepoint_path') for arg in argv)
    record = SavepointRecord(group_id)
    location = record.location() if on_flink and reads_with_kafkaio else None
    if given or not location:
        return argv
    _LOGGER.info(
        'resuming from savepoint %s (the last stop\'s, recorded in %s: delete that file to '
        'start from the group\'s committed offsets instead)',
        location,
        record.path,
    )
    return [*argv, f'--savepoint_path={location}']
