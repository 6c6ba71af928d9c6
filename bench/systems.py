"""The systems under test: the pipeline, the three references and the floor (the pipeline's shape
without its work, ``bench.floor``), each started on its own topics.

A system runs as its own process group (so that its CPU and memory can be read from
``/proc``), reads the entry and focus topics with its own consumer group, writes to the
output topic, and says how many focus events legitimately produced no output (no coupon at
or above the threshold).

The pipeline is started with ``tests.integration.harness``: ``pipeline_environment`` and
``running_pipeline`` fit as they are (``python -m pipeline --runner=DirectRunner``, a new
session, SIGINT to stop); the bench adds its settings to the environment. The floor is
started the same way, with ``python -m bench.floor``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.references import READY, read_stats
from bench.rig import Rig
from standins.flink.cluster import FlinkCluster
from standins.monitor import Topics
from standins.services import REPO_ROOT
from tests.integration.harness import (
    pipeline_environment,
    read_metrics,
    running_pipeline,
    wait_for_log,
)

# How the bench runs the pipeline: metrics every 2 s (the demo's interval) so that its
# count of focus events without coupons is fresh when the bench checks for completion.
PIPELINE_BENCH_ENV = {'METRICS_INTERVAL_SECONDS': '2'}
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Run:
    """One run of a system: the rig it talks to, its topics and its directory for files."""

    rig: Rig
    topics: Topics
    work_dir: Path

    @property
    def log_path(self) -> Path:
        return self.work_dir / 'system.log'


class System(Protocol):
    """What the bench needs of a system under test."""

    @property
    def name(self) -> str:
        """'pipeline', 'pipeline-flink', 'floor', 'simple', 'quix' or 'passthrough'."""

    @property
    def label(self) -> str:
        """The name with any non-default settings, for reports."""

    @property
    def scores(self) -> bool:
        """Whether its outputs are predictions (else every valid focus event has an output)."""

    def running(self, run: Run) -> contextlib.AbstractContextManager[int]:
        """Start the system, wait until it reads, yield its process group; stop it on exit."""

    def group(self, run: Run) -> str:
        """The consumer group whose committed offsets are the system's progress."""

    def without_output(self, run: Run) -> int:
        """Focus events the system processed that legitimately produced no output."""


@dataclass(frozen=True)
class Pipeline:
    """``python -m pipeline --runner=DirectRunner`` (on Prism), with optional settings;
    ``module``: the module run instead of ``pipeline`` (one that reads the same environment)."""

    settings: Mapping[str, str] = field(default_factory=dict)
    name: str = 'pipeline'
    scores: bool = True
    module: str = 'pipeline'

    @property
    def label(self) -> str:
        return ' '.join([self.name, *(f'{k}={v}' for k, v in sorted(self.settings.items()))])

    @contextlib.contextmanager
    def running(self, run: Run) -> Iterator[int]:
        with running_pipeline(self._environment(run), run.log_path, module=self.module) as process:
            yield process.pid

    def group(self, run: Run) -> str:
        return self._environment(run)['GROUP_ID']

    def without_output(self, run: Run) -> int:
        return read_metrics(self._metrics_file(run)).get('selection.no_coupon_above_threshold', 0)

    def _environment(self, run: Run) -> dict[str, str]:
        topics = {
            'entry': run.topics.entry,
            'focus': run.topics.focus,
            'predictions': run.topics.prediction,
            'deadletters': run.topics.dead_letter,
        }
        env = pipeline_environment(run.rig.kafka, run.rig.services, topics, self._metrics_file(run))
        return {**env, **PIPELINE_BENCH_ENV, **self.settings}

    @staticmethod
    def _metrics_file(run: Run) -> Path:
        return run.work_dir / 'metrics.json'


@dataclass(frozen=True)
class Floor(Pipeline):
    """``python -m bench.floor --runner=DirectRunner``: a job of the pipeline's shape without its
    work, on the same Prism with the same environment (see ``bench.floor``). It writes one
    output for every focus event, so its outputs are not predictions to check (``scores``
    False: every valid focus event is due one) and none is without output."""

    name: str = 'floor'
    scores: bool = False
    module: str = 'bench.floor'

    def without_output(self, run: Run) -> int:
        return 0


@dataclass(frozen=True)
class FlinkPipeline(Pipeline):
    """``python -m pipeline --runner=FlinkRunner`` on the bench's Flink cluster, at parallelism 2
    with two Python workers (the Flink defaults). Its CPU and memory are those of the
    TaskManager's process group (the JVM and the Python workers it starts), the cluster being
    idle between points; the submitting process and Beam's job server are left out."""

    cluster: FlinkCluster | None = None
    job_server_jar: str = ''
    name: str = 'pipeline-flink'

    @contextlib.contextmanager
    def running(self, run: Run) -> Iterator[int]:
        runner_args = (
            '--runner=FlinkRunner',
            f'--flink_master={self.cluster.flink_master}',
            f'--flink_job_server_jar={self.job_server_jar}',
        )
        with running_pipeline(self._environment(run), run.log_path, runner_args):
            yield next(iter(self.cluster.taskmanager_pids().values()))


@dataclass(frozen=True)
class Reference:
    """One of ``bench.references``: ``simple`` or ``passthrough``."""

    name: str
    scores: bool

    @property
    def label(self) -> str:
        return self.name

    @contextlib.contextmanager
    def running(self, run: Run) -> Iterator[int]:
        with open(run.log_path, 'w') as log:
            process = subprocess.Popen(
                self._command(run),
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_log(run.log_path, READY, process)
            yield process.pid
        finally:
            _stop(process)

    def group(self, run: Run) -> str:
        return f'bench-{self.name}-{run.topics.entry}'

    def without_output(self, run: Run) -> int:
        return read_stats(self._stats_file(run)).get('no_coupon', 0)

    def _command(self, run: Run) -> list[str]:
        return [sys.executable, '-m', 'bench.references', self.name, *self._io_arguments(run)]

    def _io_arguments(self, run: Run) -> list[str]:
        """The options every reference takes (``bench.references.add_io_arguments``)."""
        services = run.rig.services
        return [
            '--bootstrap-servers',
            run.rig.bootstrap_servers,
            '--entry-topic',
            run.topics.entry,
            '--focus-topic',
            run.topics.focus,
            '--output-topic',
            run.topics.prediction,
            '--group',
            self.group(run),
            '--stats-file',
            str(self._stats_file(run)),
            '--central-url',
            services.central_url,
            '--scorer-url',
            services.scorer_url,
        ]

    @staticmethod
    def _stats_file(run: Run) -> Path:
        return run.work_dir / 'stats.json'


@dataclass(frozen=True)
class QuixReference(Reference):
    """``bench.quix_reference``: its state lives in the run's directory, and the changelog topics
    Quix creates (named after the consumer group) are deleted when it stops."""

    @contextlib.contextmanager
    def running(self, run: Run) -> Iterator[int]:
        try:
            with super().running(run) as pid:
                yield pid
        finally:
            run.rig.delete_topics_containing(self.group(run))

    def _command(self, run: Run) -> list[str]:
        state_dir = str(run.work_dir / 'state')
        return [
            sys.executable,
            '-m',
            'bench.quix_reference',
            *self._io_arguments(run),
            '--state-dir',
            state_dir,
        ]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL the whole group if it is still there after ``STOP_TIMEOUT_S``."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


SIMPLE = Reference('simple', scores=True)
QUIX = QuixReference('quix', scores=True)
PASSTHROUGH = Reference('passthrough', scores=False)
FLOOR = Floor()
