"""The local Flink session cluster (standins/flink): start, lose and replace a TaskManager, stop.

Slow (a cluster start takes 10-20 s, and the first ever start downloads about 230 MB of
Flink jars into .local/flink/dist): run it with
``.venv/bin/python -m pytest -q -m slow tests/flink/test_cluster.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from standins.flink.cluster import FlinkCluster
from standins.flink.config import SLOTS_PER_TASKMANAGER
from standins.ports import port_free

pytestmark = pytest.mark.slow

FIRST_PORT = 18081  # unusual, so a developer's own Flink on 8081 is left alone
LOST_TASKMANAGER_S = 20.0  # heartbeat.timeout is 10 s; an RPC failure is usually seen sooner
MARKER_ENV = "FLINK_STANDIN_TEST_MARKER"


def _free_rest_port() -> int:
    """The first port from FIRST_PORT on that is free with the one above it (the RPC port)."""
    for port in range(FIRST_PORT, FIRST_PORT + 200, 10):
        if port_free(port) and port_free(port + 1):
            return port
    raise RuntimeError("no free port pair for the test cluster")


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def _eventually(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout:g} s")
        time.sleep(0.5)


@pytest.fixture
def cluster() -> Iterator[FlinkCluster]:
    cluster = FlinkCluster(rest_port=_free_rest_port())
    try:
        yield cluster
    finally:
        cluster.stop()


def test_taskmanager_is_lost_and_replaced(cluster: FlinkCluster) -> None:
    began = time.monotonic()
    cluster.start(env={MARKER_ENV: "yes"})
    print(f"start to ready: {time.monotonic() - began:.1f} s")
    assert cluster.started_here
    jobmanager = cluster.running_pid()
    assert jobmanager is not None
    [(first, first_pid)] = cluster.taskmanager_pids().items()
    assert cluster.taskmanager_ids() == [first]
    overview = cluster.overview()
    assert overview["taskmanagers"] == 1
    assert overview["slots-total"] == SLOTS_PER_TASKMANAGER == 2
    assert cluster.running_jobs() == []

    # The TaskManager runs the Python SDK workers: it gets this environment plus the extras.
    environ = Path(f"/proc/{first_pid}/environ").read_bytes().split(b"\0")
    assert f"{MARKER_ENV}=yes".encode() in environ
    assert f"PATH={os.environ['PATH']}".encode() in environ

    _eventually(lambda: (cluster.heap_used(first) or 0) > 0, 30.0, "a heap metric")

    # Another instance on the same port reuses the cluster and does not own it.
    again = FlinkCluster(rest_port=cluster.rest_port).start()
    assert again.running_pid() == jobmanager and not again.started_here

    assert cluster.kill_taskmanager() == first
    assert not _alive(first_pid)
    lost = time.monotonic()
    _eventually(lambda: first not in cluster.taskmanager_ids(), LOST_TASKMANAGER_S, "lost TM seen")
    print(f"killed TaskManager deregistered after {time.monotonic() - lost:.1f} s")
    assert cluster.overview()["slots-total"] == 0

    began = time.monotonic()
    second = cluster.start_taskmanager()
    print(f"new TaskManager registered after {time.monotonic() - began:.1f} s")
    assert second != first
    assert cluster.taskmanager_ids() == [second]
    assert list(cluster.taskmanager_pids()) == [second]
    assert cluster.overview()["slots-total"] == SLOTS_PER_TASKMANAGER
    second_pid = cluster.taskmanager_pids()[second]

    cluster.stop()
    assert cluster.running_pid() is None and cluster.taskmanager_pids() == {}
    for pid in (jobmanager, second_pid):
        assert not _alive(pid)
    assert not cluster.jobmanager_pid_file.exists()
    assert not cluster.is_ready()
