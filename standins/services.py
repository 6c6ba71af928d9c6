"""Run the central and the scorer stand-ins as local child processes.

    with LocalServices(customers=300, central_port=0, scorer_port=0) as services:
        requests.get(f"{services.central_url}/customers/1/context")
        requests.post(services.scorer_url, json={"instances": [...]})

A port of 0 picks a free one. Runtime files live under ``local_dir`` (default ``<repo>/.local``):
``central/central.sqlite3``, ``logs/{central,scorer}.log`` (+ ``.access.log``) and, for the
detached command line (``python -m standins services start|stop``), ``run/{central,scorer}.pid``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from standins.central import server as central_server
from standins.central.generate import DEFAULT_CUSTOMERS, DEFAULT_SEED, ensure_database
from standins.http import HOST
from standins.scorer import server as scorer_server

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_DIR = REPO_ROOT / ".local"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
SERVICE_NAMES = ("central", "scorer")
_LOG_TAIL_LINES = 20


@dataclass
class _Service:
    """One stand-in server process: its name (module ``standins.<name>.server``), port and options."""

    name: str
    port: int
    options: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


class LocalServices:
    """Context manager starting the central and the scorer, and stopping them on exit."""

    def __init__(
        self,
        *,
        central_port: int = central_server.DEFAULT_PORT,
        scorer_port: int = scorer_server.DEFAULT_PORT,
        customers: int = DEFAULT_CUSTOMERS,
        scorer_latency_ms: int = 0,
        scorer_max_concurrency: int = 0,
        central_latency_ms: int | None = None,
        scorer_options: Sequence[str] = (),
        local_dir: Path = LOCAL_DIR,
        seed: int = DEFAULT_SEED,
    ) -> None:
        """``scorer_options``: more of the scorer's command-line options (e.g. its fault knobs);
        ``central_latency_ms``: the central's artificial delay per request (its ``--latency-ms``;
        None leaves it to the central's default, ``$CENTRAL_LATENCY_MS`` or 0)."""
        self.local_dir = local_dir
        self.customers = customers
        self.seed = seed
        central_latency = (
            [] if central_latency_ms is None else ["--latency-ms", str(central_latency_ms)]
        )
        self._central = _Service(
            "central", central_port, ["--db", str(self.db_path), *central_latency]
        )
        self._scorer = _Service(
            "scorer",
            scorer_port,
            [
                "--latency-ms",
                str(scorer_latency_ms),
                "--max-concurrency",
                str(scorer_max_concurrency),
                *scorer_options,
            ],
        )

    @property
    def db_path(self) -> Path:
        """The central's SQLite database."""
        return self.local_dir / "central" / "central.sqlite3"

    @property
    def logs_dir(self) -> Path:
        """Where the servers' output and access logs go."""
        return self.local_dir / "logs"

    @property
    def central_url(self) -> str:
        """Base URL of the central, e.g. ``http://127.0.0.1:8701``."""
        return self._central.base_url

    @property
    def scorer_url(self) -> str:
        """Full predict URL of the scorer, e.g. ``http://127.0.0.1:8702/v1/models/coupon:predict``."""
        return self._scorer.base_url + scorer_server.PREDICT_PATH

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the running servers, by service name."""
        return {s.name: s.process.pid for s in self._services() if s.process is not None}

    def start(self) -> Self:
        """Generate the database if needed, start both servers and wait until they are healthy."""
        ensure_database(self.db_path, self.customers, self.seed)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            services = self._services()
            for service, port in zip(services, _claim_ports([s.port for s in services])):
                service.port = port
                service.process = self._spawn(service)
            for service in self._services():
                self._wait_healthy(service)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the servers (SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``)."""
        for service in self._services():
            if service.process is not None:
                _stop_child(service.process)
                service.process = None

    def stop_service(self, name: str) -> None:
        """Stop one server (``"central"`` or ``"scorer"``): an outage, until :meth:`start_service`."""
        service = self._service(name)
        if service.process is not None:
            _stop_child(service.process)
            service.process = None

    def start_service(self, name: str) -> None:
        """Start a stopped server again on its port and wait until it is healthy."""
        service = self._service(name)
        service.process = self._spawn(service)
        self._wait_healthy(service)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _services(self) -> tuple[_Service, _Service]:
        return self._central, self._scorer

    def _service(self, name: str) -> _Service:
        return {service.name: service for service in self._services()}[name]

    def _log_path(self, service: _Service) -> Path:
        return self.logs_dir / f"{service.name}.log"

    def _spawn(self, service: _Service) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            f"standins.{service.name}.server",
            "--port",
            str(service.port),
            "--access-log",
            str(self.logs_dir / f"{service.name}.access.log"),
            *service.options,
        ]
        with self._log_path(service).open("wb") as log:
            return subprocess.Popen(
                command,
                cwd=REPO_ROOT,  # so that `-m standins...` resolves to this checkout
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not hit by the terminal's Ctrl-C; stopped by stop()
            )

    def _wait_healthy(self, service: _Service) -> None:
        process = service.process
        assert process is not None
        settled = _wait_until(
            lambda: process.poll() is not None or _is_healthy(service.base_url), START_TIMEOUT_S
        )
        if settled and process.poll() is None:
            return
        reason = (
            f"exited with code {process.returncode}"
            if settled
            else f"not healthy after {START_TIMEOUT_S:.0f} s"
        )
        log_path = self._log_path(service)
        raise RuntimeError(
            f"{service.name} on port {service.port}: {reason}; tail of {log_path}:\n{_tail(log_path)}"
        )


def start_detached(services: LocalServices) -> None:
    """Start ``services`` so they outlive this process; record their pids under ``local_dir/run``."""
    run_dir = services.local_dir / "run"
    running = [name for name, pid in _read_pid_files(run_dir).items() if _is_our_server(pid, name)]
    if running:
        raise RuntimeError(
            f"already running: {', '.join(running)}; run `python -m standins services stop` first"
        )
    services.start()
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, pid in services.pids.items():
        (run_dir / f"{name}.pid").write_text(f"{pid}\n")


def stop_detached(local_dir: Path = LOCAL_DIR) -> list[str]:
    """Stop the servers recorded under ``local_dir/run``; return the names of those stopped."""
    stopped = []
    for name, pid in _read_pid_files(local_dir / "run").items():
        if _is_our_server(pid, name):
            _stop_pid(pid)
            stopped.append(name)
        (local_dir / "run" / f"{name}.pid").unlink()
    return stopped


def _stop_child(process: subprocess.Popen[bytes]) -> None:
    _terminate(process.pid, lambda: process.poll() is not None)


def _stop_pid(pid: int) -> None:
    _terminate(pid, lambda: not _is_alive(pid))


def _terminate(pid: int, has_exited: Callable[[], bool]) -> None:
    """SIGTERM ``pid``, then SIGKILL if ``has_exited`` is still false after ``STOP_TIMEOUT_S``."""
    for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _wait_until(has_exited, timeout):
            return


def _claim_ports(ports: list[int]) -> list[int]:
    """Each port if free on ``HOST`` (a free port for 0); raise if something listens there.

    The probes stay bound until every port is chosen, so that two 0s never get the same
    port (a scorer once failed its start with "Address already in use" beside the central).
    """
    with contextlib.ExitStack() as probes:
        claimed = []
        for port in ports:
            probe = probes.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
            try:
                probe.bind((HOST, port))
                probe.listen()  # a listening probe: no other socket gets its port meanwhile
            except OSError as error:
                raise RuntimeError(f"port {port} on {HOST} is not available: {error}") from None
            claimed.append(probe.getsockname()[1])
        return claimed


def _is_healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``condition`` every 50 ms until true (True) or ``timeout_s`` elapses (False)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:])
    except OSError as error:
        return f"(unreadable: {error})"


def _read_pid_files(run_dir: Path) -> dict[str, int]:
    """Recorded pids of this module's services (other stand-ins may keep pid files there too)."""
    paths = (run_dir / f"{name}.pid" for name in SERVICE_NAMES)
    return {path.stem: int(path.read_text()) for path in paths if path.is_file()}


def _is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_our_server(pid: int, name: str) -> bool:
    """Whether ``pid`` is alive and runs ``standins.<name>.server`` (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return _is_alive(pid) and f"standins.{name}.server".encode() in cmdline
