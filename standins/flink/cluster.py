"""A local Apache Flink standalone session cluster for development and tests: :class:`FlinkCluster`.

It stands in for the Flink cluster the pipeline runs on (Beam's FlinkRunner submits to its
REST API); it is not part of the product. One JobManager JVM
(``StandaloneSessionClusterEntrypoint``) and one or more TaskManager JVMs
(``TaskManagerRunner``, 2 slots each) run from the jars of PyPI's ``apache-flink-libraries``
(fetched once, see :mod:`standins.flink.dist`), configured by :mod:`standins.flink.config`.

Layout under ``<repo>/.local`` for a cluster on REST port P:

- ``flink/dist/``: the jars (``lib/``, ``bin/bash-java-utils.jar``) and a stamp naming the
  pinned requirement they came from;
- ``flink/conf-P/config.yaml``: the configuration, rewritten on every fresh start;
- ``flink/jobmanager-P.pid``, ``flink/taskmanager-P-N.pid``: the pids of the running JVMs;
- ``flink/taskmanager-P.seq``: the number N of the last TaskManager started into this cluster;
- ``flink/checkpoints-P/``, ``flink/savepoints-P/``, ``flink/tmp-P/``: state and scratch;
- ``flink/plugins/``: Flink's plugins directory, empty;
- ``logs/flink-jobmanager-P.log``, ``logs/flink-taskmanager-P-N.log``: Log4j's output;
  the ``.out`` file next to each holds the JVM's stdout and stderr (and what the Python SDK
  workers that a TaskManager starts print).

TaskManager N registers with the resource id ``taskmanager-P-N``, the id that the REST API
(``/taskmanagers``) and :meth:`FlinkCluster.taskmanager_ids` show. Each JVM leads its own process
group; stopping or killing a TaskManager signals the group, so its Python SDK workers go with it.

Liveness checks read ``/proc``, so this module runs on Linux only.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from standins.flink.config import HOST, SLOTS_PER_TASKMANAGER, config_yaml, flink_config
from standins.flink.dist import (
    DEFAULT_LOG_DIR,
    FLINK_HOME,
    fetch_distribution,
    java_command,
    resource_params,
)
from standins.flink.errors import FlinkError
from standins.ports import port_free

log = logging.getLogger(__name__)

DEFAULT_REST_PORT = 8081
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
REST_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 30
JOBMANAGER_MAIN = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER_MAIN = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
HEAP_USED_METRIC = "Status.JVM.Memory.Heap.Used"
PLUGINS_DIR = FLINK_HOME / "plugins"


class FlinkCluster:
    """A Flink standalone session cluster on 127.0.0.1: a JobManager and TaskManagers.

    ``start()`` reuses a cluster that this class already started on the same REST port (found
    through its pid files), so several processes can share one cluster. As a context manager
    it starts the cluster and, on exit, stops it only if this instance launched the JobManager.
    """

    def __init__(
        self,
        rest_port: int | None = None,
        rpc_port: int | None = None,
        log_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Describe a cluster; nothing runs until ``start()``.

        Args:
            rest_port: the REST API's port; defaults to ``$FLINK_REST_PORT`` or 8081.
            rpc_port: the JobManager's RPC port; defaults to ``rest_port + 1``.
            log_dir: where the JVMs' logs go; defaults to ``<repo>/.local/logs``.
            env: environment variables for the JVMs on top of this process's environment
                (the TaskManagers start the Python SDK workers, which inherit it).
        """
        self.rest_port = (
            rest_port
            if rest_port is not None
            else int(os.environ.get("FLINK_REST_PORT", DEFAULT_REST_PORT))
        )
        self.rpc_port = rpc_port if rpc_port is not None else self.rest_port + 1
        self.log_dir = log_dir if log_dir is not None else DEFAULT_LOG_DIR
        self.env = dict(env or {})
        self.conf_dir = FLINK_HOME / f"conf-{self.rest_port}"
        self.jobmanager_pid_file = FLINK_HOME / f"jobmanager-{self.rest_port}.pid"
        self.jobmanager_log = self.log_dir / f"flink-jobmanager-{self.rest_port}.log"
        self.started_here = False
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def rest_url(self) -> str:
        """The base URL of the REST API and web UI (what ``--flink_master`` takes, with http)."""
        return f"http://{HOST}:{self.rest_port}"

    @property
    def flink_master(self) -> str:
        """``host:port`` of the REST API, as Beam's ``--flink_master`` takes it."""
        return f"{HOST}:{self.rest_port}"

    def __enter__(self) -> FlinkCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.started_here:
            self.stop()

    # Starting and stopping.

    def start(
        self, timeout: float = READY_TIMEOUT_S, env: Mapping[str, str] | None = None
    ) -> FlinkCluster:
        """Start a JobManager and one TaskManager (or reuse a running cluster) and wait until
        a TaskManager has registered its slots.

        Args:
            timeout: seconds to wait for the cluster to be ready.
            env: more environment variables for the JVMs (added to the constructor's).

        Raises:
            FlinkError: a port is taken by something else, the jars cannot be fetched, or a
                JVM dies or the cluster is not ready within ``timeout``.
        """
        self.env.update(env or {})
        pid = self.running_pid()
        if pid is not None:
            log.info("reusing the Flink cluster on REST port %d (pid %d)", self.rest_port, pid)
            if not self.taskmanager_pids():
                self.start_taskmanager(timeout)
            self.wait_ready(timeout)
            return self
        self._stop_taskmanagers(STOP_TIMEOUT_S)  # strays of a JobManager that died
        self.jobmanager_pid_file.unlink(missing_ok=True)
        self._check_ports_free()
        began = time.monotonic()
        dist_dir = fetch_distribution()
        self._write_config()
        self._launch_jobmanager(dist_dir)
        try:
            self._launch_taskmanager(dist_dir)
            self.wait_ready(timeout)
        except FlinkError:
            self.stop()  # leave no half-started JVM or stale pid file behind
            raise
        log.info("Flink ready on %s after %.1f s", self.rest_url, time.monotonic() - began)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the TaskManagers, then the JobManager: SIGTERM, SIGKILL after ``timeout`` s.

        Stopping a cluster that is not running only removes stale pid files.
        """
        self._stop_taskmanagers(timeout)
        pid = self.running_pid()
        if pid is None:
            log.info("no Flink JobManager running on REST port %d", self.rest_port)
        else:
            log.info("stopping the Flink JobManager on REST port %d (pid %d)", self.rest_port, pid)
            self._terminate(pid, timeout, "JobManager", JOBMANAGER_MAIN)
        self.jobmanager_pid_file.unlink(missing_ok=True)
        self._seq_file.unlink(missing_ok=True)
        self.started_here = False

    def start_taskmanager(
        self, timeout: float = READY_TIMEOUT_S, env: Mapping[str, str] | None = None
    ) -> str:
        """Start one more TaskManager into the running cluster; wait until it has registered.

        Returns:
            Its resource id (``taskmanager-<rest port>-<n>``).

        Raises:
            FlinkError: no JobManager runs, or the TaskManager does not register in time.
        """
        if self.running_pid() is None:
            raise FlinkError(f"no Flink JobManager runs on REST port {self.rest_port}")
        self.env.update(env or {})
        number = self._launch_taskmanager(fetch_distribution())
        resource_id = self._taskmanager_id(number)
        self.wait_registered(resource_id, timeout)
        return resource_id

    def kill_taskmanager(self, resource_id: str | None = None) -> str:
        """SIGKILL a TaskManager (its whole process group), as a crash would end it.

        The JobManager notices through missed heartbeats (about 10 s) and restarts the
        running jobs once slots are free again (see :meth:`start_taskmanager`).

        Args:
            resource_id: which TaskManager; defaults to the oldest one still running.

        Returns:
            The resource id of the killed TaskManager.
        """
        running = self.taskmanager_pids()
        if resource_id is None:
            if not running:
                raise FlinkError(f"no Flink TaskManager runs on REST port {self.rest_port}")
            resource_id = next(iter(running))
        pid = running.get(resource_id)
        if pid is None:
            raise FlinkError(f"no TaskManager {resource_id} runs (running: {sorted(running)})")
        log.info("killing Flink TaskManager %s (pid %d)", resource_id, pid)
        _signal_group(pid, signal.SIGKILL)
        if not self._wait_exit(pid, 10.0, TASKMANAGER_MAIN):
            raise FlinkError(f"TaskManager {resource_id} (pid {pid}) survived SIGKILL")
        self._pid_file(self._number(resource_id)).unlink(missing_ok=True)
        return resource_id

    # State.

    def running_pid(self) -> int | None:
        """The JobManager's pid, if its pid file names a live JobManager of this cluster."""
        pid = _read_pid(self.jobmanager_pid_file)
        return pid if pid is not None and self._is_flink_process(pid, JOBMANAGER_MAIN) else None

    def taskmanager_pids(self) -> dict[str, int]:
        """The live TaskManagers that this class started into this cluster: resource id -> pid,
        oldest first."""
        running: dict[str, int] = {}
        for number, pid_file in self._taskmanager_pid_files():
            pid = _read_pid(pid_file)
            if pid is not None and self._is_flink_process(pid, TASKMANAGER_MAIN):
                running[self._taskmanager_id(number)] = pid
        return running

    def is_ready(self, taskmanagers: int = 1) -> bool:
        """Whether the REST API answers and at least ``taskmanagers`` TaskManagers have
        registered their slots."""
        try:
            overview = self.overview()
        except FlinkError:
            return False
        return (
            overview.get("taskmanagers", 0) >= taskmanagers
            and overview.get("slots-total", 0) >= taskmanagers * SLOTS_PER_TASKMANAGER
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, taskmanagers: int = 1) -> None:
        """Block until :meth:`is_ready`.

        Raises:
            FlinkError: with the last lines of the logs, if the JobManager is gone or
                ``timeout`` seconds pass first.
        """
        self._wait(lambda: self.is_ready(taskmanagers), timeout, "has no TaskManager with slots")

    def wait_registered(self, resource_id: str, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until the TaskManager ``resource_id`` shows in the REST API's ``/taskmanagers``.

        Raises:
            FlinkError: with the last lines of the logs, if the JobManager or that TaskManager
                is gone or ``timeout`` seconds pass first.
        """
        number = self._number(resource_id)

        def registered() -> bool:
            if resource_id not in self.taskmanager_pids():
                raise self._failure(f"lost TaskManager {resource_id} before it registered", number)
            with suppress(FlinkError):
                return resource_id in self.taskmanager_ids()
            return False

        self._wait(registered, timeout, f"did not register TaskManager {resource_id}", number)

    # The REST API.

    def rest_get(self, path: str) -> Any:
        """GET ``path`` of the REST API; the decoded JSON answer.

        Raises:
            FlinkError: the API does not answer, or answers with an error status.
        """
        try:
            response = requests.get(self.rest_url + path, timeout=REST_TIMEOUT_S)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as error:
            raise FlinkError(f"GET {self.rest_url}{path}: {error}") from error

    def overview(self) -> dict[str, Any]:
        """``/overview``: counts of TaskManagers, slots and jobs by state."""
        return dict(self.rest_get("/overview"))

    def taskmanager_ids(self) -> list[str]:
        """The resource ids of the TaskManagers registered with the JobManager now."""
        return [entry["id"] for entry in self.rest_get("/taskmanagers").get("taskmanagers", [])]

    def running_jobs(self) -> list[dict[str, Any]]:
        """``/jobs/overview`` entries of the jobs in state RUNNING (``jid``, ``name``, ...)."""
        jobs = self.rest_get("/jobs/overview").get("jobs", [])
        return [job for job in jobs if job.get("state") == "RUNNING"]

    def heap_used(self, taskmanager_id: str) -> int | None:
        """The TaskManager's used JVM heap in bytes; None until it has reported the metric."""
        answer = self.rest_get(f"/taskmanagers/{taskmanager_id}/metrics?get={HEAP_USED_METRIC}")
        for metric in answer:
            if metric.get("id") == HEAP_USED_METRIC:
                return int(float(metric["value"]))
        return None

    # Launching.

    def _write_config(self) -> None:
        """Write ``conf-<port>/config.yaml`` and create the directories it names."""
        directories = {
            name: FLINK_HOME / f"{name}-{self.rest_port}"
            for name in ("checkpoints", "savepoints", "tmp")
        }
        for directory in directories.values():
            directory.mkdir(parents=True, exist_ok=True)
        config = flink_config(
            rest_port=self.rest_port,
            rpc_port=self.rpc_port,
            checkpoint_dir=directories["checkpoints"],
            savepoint_dir=directories["savepoints"],
            tmp_dir=directories["tmp"],
        )
        shutil.rmtree(self.conf_dir, ignore_errors=True)
        self.conf_dir.mkdir(parents=True)
        (self.conf_dir / "config.yaml").write_text(config_yaml(config))

    def _launch_jobmanager(self, dist_dir: Path) -> None:
        """Start the JobManager JVM and write its pid file."""
        jvm_options, dynamic = resource_params(dist_dir, self.conf_dir, "JM")
        command = [
            *java_command(dist_dir, jvm_options, self.jobmanager_log),
            JOBMANAGER_MAIN,
            "--configDir",
            str(self.conf_dir),
            *dynamic,
        ]
        pid = self._spawn(command, self.jobmanager_log)
        self.jobmanager_pid_file.write_text(f"{pid}\n")
        self._seq_file.unlink(missing_ok=True)
        self.started_here = True
        log.info(
            "started the Flink JobManager on REST port %d (pid %d), log %s",
            self.rest_port,
            pid,
            self.jobmanager_log,
        )

    def _launch_taskmanager(self, dist_dir: Path) -> int:
        """Start the next TaskManager JVM and write its pid file; return its number."""
        number = self._next_number()
        resource_id = self._taskmanager_id(number)
        log_file = self._taskmanager_log(number)
        jvm_options, dynamic = resource_params(dist_dir, self.conf_dir, "TM")
        command = [
            *java_command(dist_dir, jvm_options, log_file),
            TASKMANAGER_MAIN,
            "--configDir",
            str(self.conf_dir),
            *dynamic,
            "-D",
            f"taskmanager.resource-id={resource_id}",
        ]
        pid = self._spawn(command, log_file)
        self._pid_file(number).write_text(f"{pid}\n")
        log.info("started Flink TaskManager %s (pid %d), log %s", resource_id, pid, log_file)
        return number

    def _spawn(self, command: list[str], log_file: Path) -> int:
        """Start ``command`` in its own session, its stdout and stderr in ``<log>.out``."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        PLUGINS_DIR.mkdir(parents=True, exist_ok=True)  # none, but Flink warns if it is missing
        with log_file.with_suffix(".out").open("wb") as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=FLINK_HOME,
                env={**os.environ, "FLINK_PLUGINS_DIR": str(PLUGINS_DIR), **self.env},
                start_new_session=True,
            )
        self._children[process.pid] = process
        return process.pid

    # TaskManager bookkeeping.

    @property
    def _seq_file(self) -> Path:
        return FLINK_HOME / f"taskmanager-{self.rest_port}.seq"

    def _next_number(self) -> int:
        """The next TaskManager number of this cluster run (1, 2, ...), recorded in the seq file."""
        try:
            last = int(self._seq_file.read_text().strip())
        except (OSError, ValueError):
            last = 0
        numbers = [number for number, _ in self._taskmanager_pid_files()]
        number = max([last, *numbers]) + 1
        self._seq_file.write_text(f"{number}\n")
        return number

    def _taskmanager_id(self, number: int) -> str:
        return f"taskmanager-{self.rest_port}-{number}"

    def _number(self, resource_id: str) -> int:
        """The number N of the resource id ``taskmanager-<port>-N``."""
        match = re.fullmatch(rf"taskmanager-{self.rest_port}-(\d+)", resource_id)
        if match is None:
            raise FlinkError(f"{resource_id!r} is no TaskManager id of this cluster")
        return int(match.group(1))

    def _pid_file(self, number: int) -> Path:
        return FLINK_HOME / f"taskmanager-{self.rest_port}-{number}.pid"

    def _taskmanager_log(self, number: int) -> Path:
        return self.log_dir / f"flink-taskmanager-{self.rest_port}-{number}.log"

    def _taskmanager_pid_files(self) -> list[tuple[int, Path]]:
        """``(number, pid file)`` of every TaskManager pid file of this cluster, by number."""
        found = []
        for pid_file in FLINK_HOME.glob(f"taskmanager-{self.rest_port}-*.pid"):
            with suppress(FlinkError):
                found.append((self._number(pid_file.stem), pid_file))
        return sorted(found)

    def _stop_taskmanagers(self, timeout: float) -> None:
        """SIGTERM every TaskManager of this cluster (SIGKILL after ``timeout``); drop pid files."""
        for resource_id, pid in self.taskmanager_pids().items():
            log.info("stopping Flink TaskManager %s (pid %d)", resource_id, pid)
            self._terminate(pid, timeout, f"TaskManager {resource_id}", TASKMANAGER_MAIN)
        for _, pid_file in self._taskmanager_pid_files():
            pid_file.unlink()

    # Processes.

    def _is_flink_process(self, pid: int, main_class: str) -> bool:
        """Whether ``pid`` is a live JVM running ``main_class`` with this cluster's config dir.

        A JVM that this instance started counts while it has not exited: for a few ms after
        the start, ``/proc/<pid>/cmdline`` is empty (the java launcher re-executes itself).
        """
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return main_class.encode() in arguments and str(self.conf_dir).encode() in arguments

    def _terminate(self, pid: int, timeout: float, what: str, main_class: str) -> None:
        """End the process group led by ``pid`` (a JVM running ``main_class``), politely first."""
        _signal_group(pid, signal.SIGTERM)
        if self._wait_exit(pid, timeout, main_class):
            return
        log.warning(
            "Flink %s (pid %d) still running %.0f s after SIGTERM; SIGKILL", what, pid, timeout
        )
        _signal_group(pid, signal.SIGKILL)
        if not self._wait_exit(pid, 10.0, main_class):
            raise FlinkError(f"Flink {what} (pid {pid}) survived SIGKILL")

    def _wait_exit(self, pid: int, timeout: float, main_class: str) -> bool:
        """Wait up to ``timeout`` s for the JVM ``pid`` to end (reaping it if it is our child)."""
        child = self._children.pop(pid, None)
        if child is not None:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                self._children[pid] = child
                return False
            return True
        deadline = time.monotonic() + timeout
        while self._is_flink_process(pid, main_class):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def _check_ports_free(self) -> None:
        """Fail with a clear message if the REST or RPC port is taken."""
        for port in (self.rest_port, self.rpc_port):
            if not port_free(port):
                raise FlinkError(
                    f"port {port} on {HOST} is in use by something other than this stand-in's "
                    f"Flink (no live JobManager in {self.jobmanager_pid_file}); stop it or choose "
                    "another REST port (--rest-port, FLINK_REST_PORT)"
                )

    # Waiting and failing.

    def _wait(
        self, done: Callable[[], bool], timeout: float, what: str, taskmanager: int | None = None
    ) -> None:
        """Poll ``done()`` until true; fail if the JobManager dies or ``timeout`` passes."""
        began = time.monotonic()
        while not done():
            if self.running_pid() is None:
                raise self._failure("JobManager is not running", taskmanager)
            if time.monotonic() - began > timeout:
                raise self._failure(f"{what} after {timeout:g} s", taskmanager)
            time.sleep(0.5)

    def _failure(self, what: str, taskmanager: int | None = None) -> FlinkError:
        """An error saying what is wrong, with the last lines of the logs concerned."""
        numbers = [taskmanager] if taskmanager is not None else self._seq_numbers()
        logs = [self.jobmanager_log, *(self._taskmanager_log(number) for number in numbers)]
        tails = "".join(_tail(path) + _tail(path.with_suffix(".out")) for path in logs)
        return FlinkError(f"Flink on REST port {self.rest_port}: {what}\n{tails}")

    def _seq_numbers(self) -> list[int]:
        """The numbers of the TaskManagers started since the JobManager (from the seq file)."""
        try:
            last = int(self._seq_file.read_text().strip())
        except (OSError, ValueError):
            return []
        return list(range(1, last + 1))


def _tail(path: Path) -> str:
    """A heading and the last lines of ``path``; empty if it is missing or empty."""
    try:
        with path.open(errors="replace") as lines:
            tail = "".join(deque(lines, maxlen=LOG_TAIL_LINES))
    except OSError:
        return ""
    return f"--- last lines of {path}:\n{tail}" if tail else ""


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid``, if it still exists."""
    with suppress(ProcessLookupError):
        os.killpg(pid, sig)
