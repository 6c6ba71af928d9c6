"""The scorer stand-in: a TF Serving / KServe v1 style REST endpoint around :mod:`.model`.

    POST /v1/models/coupon:predict  {"instances": [...]} -> {"predictions": [...]}, same order
    GET  /metrics                   {"requests": n, "instances": m, "rejected": r}
    GET  /health                    liveness

``--latency-ms`` delays every predict request; ``--max-concurrency`` N > 0 answers 429 at once
to a predict request arriving while N are already in flight (an overloaded model server).
Faults, drawn per predict request from a seeded generator (``--fault-seed``) so a run repeats:
``--error-rate`` answers that share with 503, ``--timeout-rate`` holds that share for
``--hang-ms`` before answering (longer than the client's timeout: to it, a timeout).

    python -m standins.scorer.server --port 8702
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any

from standins.http import (
    HttpError,
    JsonRequestHandler,
    Response,
    env_int,
    parse_json,
    serve,
    server_arg_parser,
)
from standins.scorer.model import CouponModel, load_model

DEFAULT_PORT = 8702
PREDICT_PATH = "/v1/models/coupon:predict"


@dataclass(frozen=True)
class Faults:
    """Shares of predict requests answered 503 or held past the client's timeout."""

    error_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_s: float = 10.0
    seed: int = 0


class ScorerState:
    """Model, simulation settings, in-flight gate and counters shared by all request threads."""

    def __init__(
        self, model: CouponModel, latency_s: float, max_concurrency: int, faults: Faults = Faults()
    ) -> None:
        self.model = model
        self.latency_s = latency_s
        self.max_concurrency = max_concurrency
        self.faults = faults
        self._random = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._requests = 0
        self._instances = 0
        self._rejected = 0
        self._errors_injected = 0
        self._timeouts_injected = 0

    def draw_fault(self) -> str | None:
        """``"error"``, ``"timeout"`` or None for the next predict request (counted)."""
        with self._lock:
            draw = self._random.random()
            if draw < self.faults.error_rate:
                self._errors_injected += 1
                return "error"
            if draw < self.faults.error_rate + self.faults.timeout_rate:
                self._timeouts_injected += 1
                return "timeout"
            return None

    def admit(self) -> bool:
        """Count a predict request; False (and counted as rejected) if the server is saturated."""
        with self._lock:
            self._requests += 1
            if 0 < self.max_concurrency <= self._in_flight:
                self._rejected += 1
                return False
            self._in_flight += 1
            return True

    def release(self, instances: int) -> None:
        """End an admitted request that scored ``instances`` instances."""
        with self._lock:
            self._in_flight -= 1
            self._instances += instances

    def metrics(self) -> dict[str, int]:
        """Predict requests received, instances scored, requests rejected (429) or faulted."""
        with self._lock:
            return {
                "requests": self._requests,
                "instances": self._instances,
                "rejected": self._rejected,
                "errors_injected": self._errors_injected,
                "timeouts_injected": self._timeouts_injected,
            }


class ScorerHandler(JsonRequestHandler):
    """HTTP routes of the scorer."""

    def __init__(self, state: ScorerState, *args: Any, **kwargs: Any) -> None:
        self.state = state
        super().__init__(*args, **kwargs)

    def get(self, path: str) -> Response:
        """Health and metrics."""
        if path == "/health":
            return HTTPStatus.OK, {"status": "ok"}
        if path == "/metrics":
            return HTTPStatus.OK, self.state.metrics()
        return super().get(path)

    def post(self, path: str, body: bytes) -> Response:
        """Score a batch, unless saturated (429)."""
        if path != PREDICT_PATH:
            return super().post(path, body)
        if not self.state.admit():
            raise HttpError(
                HTTPStatus.TOO_MANY_REQUESTS,
                "overloaded",
                max_concurrency=self.state.max_concurrency,
            )
        scored = 0
        try:
            fault = self.state.draw_fault()
            if fault == "error":
                raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "injected fault")
            time.sleep(self.state.faults.hang_s if fault == "timeout" else self.state.latency_s)
            predictions = [
                self._predict(i, instance)
                for i, instance in enumerate(_instances(parse_json(body)))
            ]
            scored = len(predictions)
            return HTTPStatus.OK, {"predictions": predictions}
        finally:
            self.state.release(scored)

    def _predict(self, index: int, instance: Mapping[str, Any]) -> float:
        try:
            return self.state.model.predict(instance)
        except ValueError as error:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"instances[{index}]: {error}") from None


def _instances(request: Any) -> list[Mapping[str, Any]]:
    """The request's instance list, or a 400 describing what is wrong with it."""
    instances = request.get("instances") if isinstance(request, dict) else None
    if not isinstance(instances, list):
        raise HttpError(HTTPStatus.BAD_REQUEST, 'body must be an object with an "instances" list')
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, f"instances[{index}] must be an object")
    return instances


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the scorer until terminated."""
    parser = server_arg_parser("scorer", "SCORER_PORT", DEFAULT_PORT)
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=env_int("SCORER_LATENCY_MS", 0),
        help="artificial delay per predict request (default: $SCORER_LATENCY_MS or 0)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=env_int("SCORER_MAX_CONCURRENCY", 0),
        help="predict requests in flight before answering 429; 0 = unlimited (default: $SCORER_MAX_CONCURRENCY or 0)",
    )
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of predict requests answered 503"
    )
    parser.add_argument(
        "--timeout-rate",
        type=float,
        default=0.0,
        help="share of predict requests held for --hang-ms before answering",
    )
    parser.add_argument(
        "--hang-ms", type=int, default=10_000, help="how long a timed-out request is held"
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    args = parser.parse_args(argv)
    faults = Faults(args.error_rate, args.timeout_rate, args.hang_ms / 1000, args.fault_seed)
    state = ScorerState(load_model(), args.latency_ms / 1000, args.max_concurrency, faults)
    serve(partial(ScorerHandler, state), args.port, args.access_log)


if __name__ == "__main__":
    main()
