"""A tiny HTTP server on 127.0.0.1 for the unit tests: it answers by a function you give."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

# answer(method, path, body) -> (status, JSON body)
Answer = Callable[[str, str, Optional[Any]], tuple[int, Any]]


class StubHttpServer:
    """Serves on a free port while in a ``with`` block; records (method, path, body)."""

    def __init__(self, answer: Answer):
        self.answer = answer
        self.requests: list[tuple[str, str, Optional[Any]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _respond(self) -> None:
                length = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                stub.requests.append((self.command, self.path, body))
                status, answer = stub.answer(self.command, self.path, body)
                payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _respond  # pylint: disable=invalid-name

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.base_url = f'http://127.0.0.1:{self._server.server_port}'
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )

    def __enter__(self) -> 'StubHttpServer':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
