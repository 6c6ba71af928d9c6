"""Tiny JSON-over-HTTP plumbing shared by the stand-in servers (central, scorer).

A server subclasses :class:`JsonRequestHandler`, overrides :meth:`~JsonRequestHandler.get`
and/or :meth:`~JsonRequestHandler.post` to return ``(status, payload)`` or raise
:class:`HttpError`, and runs with :func:`serve`.

With ``STANDIN_TOKEN`` set in the environment, every request but ``GET /health`` (the liveness
probe) needs ``Authorization: Bearer <STANDIN_TOKEN>`` and is answered 401 without it.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

HOST = "127.0.0.1"
LOGS_DIR = Path(__file__).resolve().parents[1] / ".local" / "logs"
TOKEN_ENV = "STANDIN_TOKEN"
OPEN_PATHS = frozenset({"/health"})

Payload = dict[str, Any]
Response = tuple[HTTPStatus, Payload]

_access_log = logging.getLogger("standins.access")


class HttpError(Exception):
    """An error answered to the client as ``{"error": message, **extra}``."""

    def __init__(self, status: HTTPStatus, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload: Payload = {"error": message, **extra}


class JsonRequestHandler(BaseHTTPRequestHandler):
    """Routes GET/POST to :meth:`get`/:meth:`post` and answers JSON (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "standins/1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every response on a keep-alive connection.
    disable_nagle_algorithm = True

    def get(self, path: str) -> Response:
        """Answer a GET for ``path`` (query string stripped)."""
        raise HttpError(HTTPStatus.NOT_FOUND, "not found", path=path)

    def post(self, path: str, body: bytes) -> Response:
        """Answer a POST for ``path`` with the raw request ``body``."""
        raise HttpError(HTTPStatus.NOT_FOUND, "not found", path=path)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        """Dispatch a GET request."""
        self._answer(lambda: self.get(self._route()))

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        """Dispatch a POST request; the body is always drained so keep-alive stays in sync."""
        body = self._read_body()
        self._answer(lambda: self.post(self._route(), body))

    def send_json(self, status: HTTPStatus, payload: Payload) -> None:
        """Write ``payload`` as a JSON response with ``status``."""
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        """Send access and error lines to the access log instead of stderr."""
        _access_log.info("%s %s", self.address_string(), format % args)

    def _route(self) -> str:
        return urlsplit(self.path).path

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _authorized(self) -> bool:
        """Whether no token is required, the path is open, or the request bears the token."""
        token = os.environ.get(TOKEN_ENV)
        if not token or self._route() in OPEN_PATHS:
            return True
        presented = self.headers.get("Authorization", "").encode()
        return hmac.compare_digest(presented, f"Bearer {token}".encode())

    def _answer(self, produce: Callable[[], Response]) -> None:
        try:
            if not self._authorized():
                raise HttpError(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")
            status, payload = produce()
        except HttpError as error:
            status, payload = error.status, error.payload
        except Exception:  # a bug in a stand-in must not kill the connection silently
            _access_log.exception("unhandled error for %s %s", self.command, self.path)
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}
        self.send_json(status, payload)


def parse_json(body: bytes) -> Any:
    """Decode a JSON request body or raise a 400 :class:`HttpError`."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {error}") from None


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable, ``default`` when unset or empty."""
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def server_arg_parser(name: str, port_env: str, default_port: int) -> argparse.ArgumentParser:
    """Command-line options common to the stand-in servers: ``--port`` and ``--access-log``."""
    parser = argparse.ArgumentParser(prog=f"python -m standins.{name}.server")
    parser.add_argument(
        "--port",
        type=int,
        default=env_int(port_env, default_port),
        help=f"port on {HOST} (default: ${port_env} or {default_port})",
    )
    parser.add_argument(
        "--access-log",
        type=Path,
        default=LOGS_DIR / f"{name}.access.log",
        help="file receiving one line per request",
    )
    return parser


class _Server(ThreadingHTTPServer):
    """One thread per connection, with a listen backlog fit for a parallel pipeline (default 5)."""

    request_queue_size = 128


def serve(handler: Callable[..., BaseHTTPRequestHandler], port: int, access_log: Path) -> None:
    """Serve ``handler`` on ``HOST:port`` until SIGTERM/SIGINT, logging requests to ``access_log``."""
    _configure_access_log(access_log)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with _Server((HOST, port), handler) as server:
        print(f"listening on http://{HOST}:{server.server_port}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def _configure_access_log(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    _access_log.addHandler(handler)
    _access_log.setLevel(logging.INFO)
    _access_log.propagate = False


def _exit_on_signal(_signum: int, _frame: object) -> NoReturn:
    sys.exit(0)  # unwinds serve_forever so the listening socket is closed
