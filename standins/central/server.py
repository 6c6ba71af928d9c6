"""The central stand-in: customer context and coupon catalogue over HTTP, read from SQLite.

GET /customers/{id}/context   one customer's row
GET /departments/{id}/coupons one department's coupons, by coupon_id
GET /coupons                  the whole catalogue, keyed by department id
GET /metrics                  requests answered so far: {"requests": n, "context": c, "coupons": k}
GET /health                   liveness

python -m standins.central.server --port 8701 --db .local/central/central.sqlite3
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any

from standins.central.generate import DEFAULT_DB_PATH, connect_read_only
from standins.http import HttpError, JsonRequestHandler, Response, env_int, serve, server_arg_parser

DEFAULT_PORT = 8701
_CUSTOMER_CONTEXT = re.compile(r"/customers/([^/]+)/context")
_DEPARTMENT_COUPONS = re.compile(r"/departments/([^/]+)/coupons")
_COUPON_COLUMNS = "coupon_id, department_id, mean_coupon_discount, mean_item_price"


class CentralStore:
    """Read-only queries on the central database, one SQLite connection per thread."""

    def __init__(self, db_path: Path) -> None:
        if not db_path.is_file():
            raise FileNotFoundError(
                f"no central database at {db_path}; run python -m standins.central.generate"
            )
        self._db_path = db_path
        self._local = threading.local()

    def customer(self, customer_id: int) -> dict[str, Any] | None:
        """All columns of one customer, or None if unknown."""
        row = self._query("SELECT * FROM customers WHERE customer_id = ?", customer_id)
        return dict(row[0]) if row else None

    def department_coupons(self, department_id: int) -> list[dict[str, Any]] | None:
        """The department's coupons ordered by id, or None if the department is unknown."""
        if not self._query("SELECT 1 FROM departments WHERE department_id = ?", department_id):
            return None
        rows = self._query(
            f"SELECT {_COUPON_COLUMNS} FROM coupons WHERE department_id = ? ORDER BY coupon_id",
            department_id,
        )
        return [dict(row) for row in rows]

    def catalogue(self) -> dict[str, list[dict[str, Any]]]:
        """Every department's coupons ordered by id, keyed by the department id as a string."""
        departments = self._query("SELECT department_id FROM departments ORDER BY department_id")
        catalogue: dict[str, list[dict[str, Any]]] = {str(row[0]): [] for row in departments}
        for row in self._query(f"SELECT {_COUPON_COLUMNS} FROM coupons ORDER BY coupon_id"):
            catalogue[str(row["department_id"])].append(dict(row))
        return catalogue

    def _query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return self._connection().execute(sql, params).fetchall()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_read_only(self._db_path)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn


class RequestCounts:
    """Data requests the central received (all but /health and /metrics), shared by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"requests": 0, "context": 0, "coupons": 0}

    def count(self, path: str) -> None:
        """Count one request for ``path``, also by route for the context and catalogue routes."""
        with self._lock:
            self._counts["requests"] += 1
            if _CUSTOMER_CONTEXT.fullmatch(path):
                self._counts["context"] += 1
            elif path == "/coupons":
                self._counts["coupons"] += 1

    def snapshot(self) -> dict[str, int]:
        """The counters now."""
        with self._lock:
            return dict(self._counts)


class CentralHandler(JsonRequestHandler):
    """HTTP routes of the central."""

    def __init__(
        self,
        store: CentralStore,
        latency_s: float,
        *args: Any,
        counts: RequestCounts | None = None,
        **kwargs: Any,
    ) -> None:
        self.store = store
        self.latency_s = latency_s
        self.counts = counts or RequestCounts()
        super().__init__(*args, **kwargs)

    def get(self, path: str) -> Response:
        """Answer the central's GET routes, after the configured artificial latency."""
        if path == "/health":
            return HTTPStatus.OK, {"status": "ok"}
        if path == "/metrics":
            return HTTPStatus.OK, self.counts.snapshot()
        self.counts.count(path)
        time.sleep(self.latency_s)
        if match := _CUSTOMER_CONTEXT.fullmatch(path):
            return self._customer_context(_parse_id(match[1], "customer_id"))
        if match := _DEPARTMENT_COUPONS.fullmatch(path):
            return self._department_coupons(_parse_id(match[1], "department_id"))
        if path == "/coupons":
            return HTTPStatus.OK, {"departments": self.store.catalogue()}
        return super().get(path)

    def _customer_context(self, customer_id: int) -> Response:
        customer = self.store.customer(customer_id)
        if customer is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "unknown customer", customer_id=customer_id)
        return HTTPStatus.OK, customer

    def _department_coupons(self, department_id: int) -> Response:
        coupons = self.store.department_coupons(department_id)
        if coupons is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "unknown department", department_id=department_id)
        return HTTPStatus.OK, {"department_id": department_id, "coupons": coupons}


def _parse_id(raw: str, field: str) -> int:
    """An integer path segment, or a 400 naming ``field``."""
    if not re.fullmatch(r"-?[0-9]+", raw):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{field} must be an integer", **{field: raw})
    return int(raw)


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the central until terminated."""
    parser = server_arg_parser("central", "CENTRAL_PORT", DEFAULT_PORT)
    parser.add_argument(
        "--db",
        type=Path,
        default=DEFAULT_DB_PATH,
        help="database written by python -m standins.central.generate",
    )
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=env_int("CENTRAL_LATENCY_MS", 0),
        help="artificial delay per request (default: $CENTRAL_LATENCY_MS or 0)",
    )
    args = parser.parse_args(argv)
    store = CentralStore(args.db)
    handler = partial(CentralHandler, store, args.latency_ms / 1000, counts=RequestCounts())
    serve(handler, args.port, args.access_log)


if __name__ == "__main__":
    main()
