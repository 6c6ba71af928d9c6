"""Fixtures of the Flink tests: the job server jar (or a skip naming what to set), a local Flink
session cluster, and the broker and stand-ins of the integration tests.

The Flink tests need Beam's Flink job server for Beam 2.73 and Flink 1.20. This machine's Maven
mirror does not serve it (``beam-runners-flink-1.20-job-server``), so CI cannot run them:
set FLINK_JOB_SERVER_JAR to the jar (a machine that reaches Maven Central can download it) and
run ``./run_tests.sh -m flink``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import pytest

from standins.flink.cluster import FlinkCluster
from tests.integration.conftest import (  # noqa: F401 (fixtures and the figures summary)
    fault_figures,
    kafka,
    pytest_terminal_summary,
    services,
    topics,
)

# FLINK_TEST_REST_PORT: another port, for a second test run at the same time.
FLINK_REST_PORT = int(os.environ.get('FLINK_TEST_REST_PORT', '18181'))


@pytest.fixture(scope='session')
def flink_job_server_jar() -> str:
    jar = os.environ.get('FLINK_JOB_SERVER_JAR')
    if not jar:
        pytest.skip(
            'set FLINK_JOB_SERVER_JAR to the Flink job server jar of Beam 2.73 for Flink 1.20 '
            '(beam-runners-flink-1.20-job-server-2.73.0.jar) to run the Flink tests'
        )
    if not Path(jar).is_file():
        pytest.fail(f'FLINK_JOB_SERVER_JAR = {jar!r} is not a file')
    return jar


@pytest.fixture(scope='session')
def flink(flink_job_server_jar: str) -> Iterator[FlinkCluster]:
    with FlinkCluster(rest_port=FLINK_REST_PORT) as cluster:
        yield cluster


def flink_runner_args(cluster: FlinkCluster, jar: str, *more: str) -> tuple[str, ...]:
    """``python -m pipeline``'s flags for the cluster: parallelism 2, two Python worker
    processes (PROCESS environment, the Flink default)."""
    return (
        '--runner=FlinkRunner',
        f'--flink_master={cluster.flink_master}',
        f'--flink_job_server_jar={jar}',
        '--parallelism=2',
        '--sdk_worker_parallelism=2',
        *more,
    )


def python_workers(cluster: FlinkCluster) -> set[str]:
    """The SDK workers that have connected to the cluster's TaskManagers so far, as
    ``<log line's time> <worker id>`` (Beam logs ``Beam Fn Control client connected with id
    <id>`` for each; the ids start again with every job)."""
    connected = re.compile(r'^(\S+ \S+) .*Beam Fn Control client connected with id (\S+)', re.M)
    return {
        f'{match.group(1)} {match.group(2)}'
        for log in cluster.log_dir.glob(f'flink-taskmanager-{cluster.rest_port}-*.log')
        for match in connected.finditer(log.read_text(errors='replace'))
    }
