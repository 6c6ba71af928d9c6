"""Running on Flink: the flags this service needs there, filled in where the command line is silent.

``python -m pipeline --runner=FlinkRunner`` submits the pipeline through Beam's Flink job server
to a Flink session cluster. What is added, unless the command line gives it:

- ``--flink_master``: ``$FLINK_MASTER``, else ``localhost:8081`` (the local cluster of
  ``python -m standins.flink``).
- ``--flink_job_server_jar``: ``$FLINK_JOB_SERVER_JAR``. Unset, Beam downloads
  ``beam-runners-flink-1.20-job-server`` of the SDK's version from Maven Central (a machine
  that cannot reach it must set the variable). Set to a file that does not exist, the start
  fails naming the variable.
- ``--kafka_io=xlang-read``, unless ``KAFKA_IO`` is set: Java KafkaIO reads, as a native Flink
  source (``use_deprecated_read``: pipeline.xlang.runtime) whose offsets live in Flink's
  checkpoints, committed to the group by KafkaIO when a checkpoint completes; the Python
  connector writes. It runs on Beam's released 2.73 job server; the Python read
  (``KAFKA_IO=python``) needs a job server with the fix of apache/beam#27648
  (docs/runners.md).
- The parallelism: ``--parallelism`` if given, else the cluster's ``parallelism.default``
  (``pipeline.flink.runner`` hands it to the job server, which would otherwise run the job at
  1).
- ``--environment_type=PROCESS``: each TaskManager starts the Python SDK harness from this
  project's own environment (``python_harness.sh``, no Docker). ``LOOPBACK`` (the harness in
  the submitting process) is for local debugging only: the job dies with its submitter.
- ``--sdk_worker_parallelism=2``: two Python worker processes per TaskManager, one per slot of
  the local cluster's TaskManager: one process would run both subtasks under one interpreter lock.
  The offsets are committed correctly with any number (transforms.kafka.offsets, keyed).
- ``--checkpointing_interval``: ``$FLINK_CHECKPOINT_INTERVAL_MS``, else 10000: Flink restores
  the job from its last checkpoint after a failure (the cluster's restart strategy restarts it).
- ``--finish_bundle_before_checkpointing``: each stage finishes its open bundle, and sends on
  what it output, before Flink snapshots it. Without it (Beam's default) what a bundle outputs
  while it is finished for a snapshot is kept in the stage's state and sent on only when
  the stage starts its next bundle or sees a new watermark. The read's first stages (the
  topic-partitions listed, then paired with their start offsets) see neither once their few
  elements are through: a checkpoint during their only bundle (the job's first seconds, while
  the start offsets are read from the broker) kept the partitions not yet sent on from ever
  being read (apache/beam BEAM-10558 is the same trap).
- ``--max_bundle_time_mills`` / ``--max_bundle_size``: ``$FLINK_MAX_BUNDLE_TIME_MS`` (else 10)
  and ``$FLINK_MAX_BUNDLE_SIZE`` (else 200). Flink's defaults (1000 ms, 1000 elements) hold a
  focus event's predictions for up to a second per stage; the latency goal is 150 ms. At 50
  focus events/s, 10 ms bundles gave p50 112-113 ms where 20 ms gave 128-143, for about a
  sixth more CPU.
- ``FLINK_BUFFER_TIMEOUT_MS`` (else 5): how long Flink holds a record in a network buffer that
  is not full before sending it to the next stage (Flink's default, 100 ms, is met at every
  exchange at a store's rates). Beam has no option for it: ``pipeline.flink.runner`` gives it
  to the job server as a Flink configuration.
- ``--job_name=coupon-scoring-<8 hex digits>``: a name of its own, by which
  ``pipeline.flink.job`` finds the job in Flink's REST API.
- ``--sdk_harness_log_level_overrides``: Beam's and kafka-python's loggers at WARNING in the
  workers, whose logs go to the TaskManager's log.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Mapping, Sequence

HARNESS = Path(__file__).resolve().parent / 'python_harness.sh'
JOB_NAME = 'coupon-scoring'
QUIET_LOGGERS = {'apache_beam': 'WARNING', 'kafka': 'WARNING'}
BUFFER_TIMEOUT_MS = 5
SWITCHES = ('finish_bundle_before_checkpointing',)  # boolean flags, on unless given
# Flags of Beam's Flink job server (its Java FlinkPipelineOptions) that Beam's Python options
# do not declare: the Python SDK passes them on.
JOB_SERVER_FLAGS = frozenset(
    {
        'checkpointing_interval',
        'max_bundle_time_mills',
        'max_bundle_size',
        'finish_bundle_before_checkpointing',
        'savepoint_path',
        'allow_non_restored_state',
    }
)


class FlinkConfigError(ValueError):
    """A Flink setting that cannot work (names the variable or flag)."""


def _given(argv: Sequence[str], flag: str) -> bool:
    return any(arg == f'--{flag}' or arg.startswith(f'--{flag}=') for arg in argv)


def harness_environment_config(python: str = sys.executable) -> str:
    """The PROCESS environment's config: our harness script, run with this interpreter."""
    return json.dumps({'command': str(HARNESS), 'env': {'HARNESS_PYTHON': python}})


def flink_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The flags this service runs with on Flink, from the environment or built in."""
    defaults = {
        'flink_master': environ.get('FLINK_MASTER') or 'localhost:8081',
        'environment_type': 'PROCESS',
        'sdk_worker_parallelism': '2',
        'checkpointing_interval': environ.get('FLINK_CHECKPOINT_INTERVAL_MS') or '10000',
        'max_bundle_time_mills': environ.get('FLINK_MAX_BUNDLE_TIME_MS') or '10',
        'max_bundle_size': environ.get('FLINK_MAX_BUNDLE_SIZE') or '200',
        'job_name': f'{JOB_NAME}-{uuid.uuid4().hex[:8]}',
        # the workers' logs go to the TaskManager's log: Beam's and kafka-python's INFO
        # chatter (a line per batch, per connection) would bury the pipeline's own
        'sdk_harness_log_level_overrides': json.dumps(QUIET_LOGGERS),
    }
    if not environ.get('KAFKA_IO'):
        defaults['kafka_io'] = 'xlang-read'
    jar = environ.get('FLINK_JOB_SERVER_JAR')
    if jar:
        if not Path(jar).is_file():
            raise FlinkConfigError(f'FLINK_JOB_SERVER_JAR = {jar!r} is not a file')
        defaults['flink_job_server_jar'] = jar
    for variable in (
        'FLINK_CHECKPOINT_INTERVAL_MS',
        'FLINK_MAX_BUNDLE_TIME_MS',
        'FLINK_MAX_BUNDLE_SIZE',
    ):
        value = environ.get(variable)
        if value and not (value.isdigit() and int(value) > 0):
            raise FlinkConfigError(f'{variable} = {value!r} is invalid: must be a positive integer')
    buffer_timeout_ms(environ)  # checked now, used when the job server starts
    return defaults


def buffer_timeout_ms(environ: Mapping[str, str] = os.environ) -> int:
    """``FLINK_BUFFER_TIMEOUT_MS``, else ``BUFFER_TIMEOUT_MS`` (0: send every record at once)."""
    value = environ.get('FLINK_BUFFER_TIMEOUT_MS')
    if not value:
        return BUFFER_TIMEOUT_MS
    if not value.isdigit():
        raise FlinkConfigError(
            f'FLINK_BUFFER_TIMEOUT_MS = {value!r} is invalid: must be an integer of 0 or more'
        )
    return int(value)


def with_flink_defaults(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """``argv`` plus the defaults of ``flink_defaults`` it does not set itself; unchanged
    unless it asks for ``--runner=FlinkRunner``."""
    if not any(arg in ('--runner=FlinkRunner', 'FlinkRunner') for arg in argv):
        return list(argv)
    added = [
        f'--{flag}={value}'
        for flag, value in flink_defaults(environ).items()
        if not _given(argv, flag)
    ]
    added += [f'--{switch}' for switch in SWITCHES if not _given(argv, switch)]
    if not _given(argv, 'environment_type') and not _given(argv, 'environment_config'):
        added.append(f'--environment_config={harness_environment_config()}')
    return [*argv, *added]
