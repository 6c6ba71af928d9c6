"""How many requests the stand-ins answer on their own, measured before the systems run.

Each endpoint is hit by 1 and by 4 client threads for a few seconds, each thread with its
own keep-alive ``requests.Session`` (as the systems' clients): the scorer's predict with 1
and with 50 rows per request (real rows: ``transforms.scoring.scorer_rows`` of a known
customer, repeated), the central's ``/customers/{id}/context`` (cycling through the
customers) and ``/coupons`` (the catalogue). The clients run in the bench's own process
and share the 2 cores with the stand-in, so the figures are what the stand-in answers on this
machine, a lower bound of what it could answer alone.

The bench compares each point's scorer and central requests per second with these: the
scorer's capacity at a point's rows per request is interpolated between 1 and 50 rows
(linearly in time per request), the central's is its context route's.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import requests

from standins.services import LocalServices
from transforms.central import CentralClient, CentralConfig
from transforms.domain import EnrichedFocus, FocusEvent, SourcePosition
from transforms.scoring import scorer_rows

DURATION_S = 2.0
THREADS = (1, 4)
SCORER_ROWS = (1, 50)
SCORER = 'scorer predict'
CONTEXT = 'central /customers/{id}/context'
COUPONS = 'central /coupons'
TIMEOUT_S = 5.0

Call = Callable[[requests.Session, int], requests.Response]  # a session, the call's number


@dataclass(frozen=True)
class Throughput:
    """One measurement: ``threads`` clients calling ``endpoint`` for ``seconds``."""

    endpoint: str
    rows: int | None  # instances per scorer request (None for the central)
    threads: int
    requests: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class StandinCapacity:
    """Every measurement, and the capacities the report compares the points with."""

    figures: tuple[Throughput, ...]

    def best(self, endpoint: str, rows: int | None = None) -> float | None:
        """The most requests/s ``endpoint`` answered (with ``rows``), over the thread counts."""
        rates = [f.per_s for f in self.figures if f.endpoint == endpoint and f.rows == rows]
        return max(rates, default=None)

    def scorer(self, rows_per_request: float | None) -> float | None:
        """Scorer requests/s at ``rows_per_request``: time per request interpolated linearly
        between the 1-row and the 50-row figures (extrapolated beyond)."""
        low, high = (self.best(SCORER, rows) for rows in SCORER_ROWS)
        if rows_per_request is None or not low or not high:
            return None
        share = (max(rows_per_request, 1.0) - SCORER_ROWS[0]) / (SCORER_ROWS[1] - SCORER_ROWS[0])
        return 1 / (1 / low + (1 / high - 1 / low) * share)

    @property
    def central(self) -> float | None:
        """Central requests/s: its context route's, which nearly all the systems' calls are."""
        return self.best(CONTEXT)

    def as_dict(self) -> dict[str, object]:
        return {'figures': [{**asdict(f), 'per_s': round(f.per_s, 1)} for f in self.figures]}


def measure_capacity(
    services: LocalServices, duration_s: float = DURATION_S, threads: tuple[int, ...] = THREADS
) -> StandinCapacity:
    """Hit each endpoint of ``services`` alone with each number of client threads."""
    calls = _calls(services)
    figures = tuple(
        _hammer(endpoint, rows, call, count, duration_s)
        for (endpoint, rows), call in calls.items()
        for count in threads
    )
    return StandinCapacity(figures)


def _calls(services: LocalServices) -> dict[tuple[str, int | None], Call]:
    """What each measurement sends, by endpoint and rows per request."""
    central = CentralClient(CentralConfig(services.central_url))
    try:
        row = _scorer_row(central)
    finally:
        central.close()
    customers = services.customers

    def scorer(rows: int) -> Call:
        body = {'instances': [row] * rows}
        return lambda session, _n: session.post(services.scorer_url, json=body, timeout=TIMEOUT_S)

    def context(session: requests.Session, n: int) -> requests.Response:
        url = f'{services.central_url}/customers/{n % customers + 1}/context'
        return session.get(url, timeout=TIMEOUT_S)

    def coupons(session: requests.Session, _n: int) -> requests.Response:
        return session.get(f'{services.central_url}/coupons', timeout=TIMEOUT_S)

    return {
        **{(SCORER, rows): scorer(rows) for rows in SCORER_ROWS},
        (CONTEXT, None): context,
        (COUPONS, None): coupons,
    }


def _scorer_row(central: CentralClient) -> dict[str, object]:
    """A real scorer row: customer 1 and the first coupon of the first department."""
    department, coupons = next(iter(sorted(central.coupon_catalogue().items())))
    focus = FocusEvent(1, department, '', 0.0, SourcePosition('capacity', 0, 0), 0.0)
    return scorer_rows(EnrichedFocus(focus, central.customer_context(1), coupons))[0]


def _hammer(
    endpoint: str, rows: int | None, call: Call, threads: int, seconds: float
) -> Throughput:
    """``threads`` clients calling ``call`` back to back for ``seconds``; the answered count."""
    numbers = itertools.count()  # next() on it is atomic under the GIL
    answered = [0] * threads
    errors: list[Exception] = []
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        with requests.Session() as session:
            try:
                while time.monotonic() < deadline:
                    call(session, next(numbers)).raise_for_status()
                    answered[index] += 1
            except requests.RequestException as error:
                errors.append(error)

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise RuntimeError(f'{endpoint}: {errors[0]}')
    return Throughput(endpoint, rows, threads, sum(answered), time.monotonic() - started)
