"""The client of "the central": customer contexts and the coupon catalogue.

HTTP with a connect/read timeout, retries with exponential backoff on
connection errors, 429 and 5xx (urllib3's Retry), and at most
``max_concurrency`` requests in flight from one worker process. With a
token, every request carries ``Authorization: Bearer <token>``; the token is
kept out of reprs and error messages (``bearer_headers`` and ``masked`` serve
the scorer's client too).

Endpoints (see standins/central for the local stand-in):
  GET /customers/{id}/context  -> 200 profile | 404 unknown customer
  GET /coupons                 -> 200 {"departments": {"<id>": [coupon, ...]}}
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from transforms.domain import Coupon, CustomerContext

_SEMAPHORES: dict[int, threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


class CentralUnavailable(RuntimeError):
    """The central did not answer usefully, even after retries."""


def is_valid_token(token: str) -> bool:
    """Whether ``token`` is printable ASCII without blanks: HTTP libraries quote bad header values in errors."""
    return bool(token) and all('!' <= char <= '~' for char in token)


def bearer_headers(token: Optional[str]) -> dict[str, str]:
    """The Authorization header that sends ``token``; none without a token.

    Raises:
      ValueError: the token is not a valid header value (the message does not show it).
    """
    if token is None:
        return {}
    if not is_valid_token(token):
        raise ValueError('a bearer token must be printable ASCII without spaces or line breaks')
    return {'Authorization': f'Bearer {token}'}


def masked(text: str, secret: Optional[str]) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, '***') if secret else text


def _process_semaphore(max_concurrency: int) -> threading.BoundedSemaphore:
    with _SEMAPHORES_LOCK:
        return _SEMAPHORES.setdefault(max_concurrency, threading.BoundedSemaphore(max_concurrency))


def retrying_session(retries: int, pool_size: int) -> requests.Session:
    """A session that retries idempotent and POST requests with backoff."""
    retry = Retry(
        total=retries,
        backoff_factor=0.2,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount('http://', HTTPAdapter(max_retries=retry, pool_maxsize=pool_size))
    session.mount('https://', HTTPAdapter(max_retries=retry, pool_maxsize=pool_size))
    return session


@dataclasses.dataclass(frozen=True)
class CentralConfig:
    base_url: str
    timeout_s: float = 2.0
    retries: int = 3
    max_concurrency: int = 8
    token: Optional[str] = dataclasses.field(default=None, repr=False)


class CentralClient:
    """Reads contexts and the catalogue; not thread-safe beyond the semaphore."""

    def __init__(self, config: CentralConfig):
        self._config = config
        self._session = retrying_session(config.retries, config.max_concurrency)
        self._session.headers.update(bearer_headers(config.token))
        self._in_flight = _process_semaphore(config.max_concurrency)

    def _get(self, path: str) -> requests.Response:
        with self._in_flight:
            try:
                return self._session.get(
                    self._config.base_url + path, timeout=self._config.timeout_s
                )
            except requests.RequestException as error:
                raise CentralUnavailable(
                    f'GET {path}: {masked(str(error), self._config.token)}'
                ) from None

    def customer_context(self, customer_id: int) -> CustomerContext:
        """The customer's context; an unknown customer (404) has the default one."""
        response = self._get(f'/customers/{customer_id}/context')
        if response.status_code == 404:
            return CustomerContext.unknown(customer_id)
        if response.status_code != 200:
            raise CentralUnavailable(
                f'GET context of customer {customer_id}: HTTP {response.status_code}'
            )
        return CustomerContext.from_profile(customer_id, response.json())

    def coupon_catalogue(self) -> dict[int, tuple[Coupon, ...]]:
        """Every department's coupons, by department id."""
        response = self._get('/coupons')
        if response.status_code != 200:
            raise CentralUnavailable(f'GET /coupons: HTTP {response.status_code}')
        return {
            int(department): tuple(Coupon(**coupon) for coupon in coupons)
            for department, coupons in response.json()['departments'].items()
        }

    def close(self) -> None:
        self._session.close()


class CachedCatalogue:
    """The coupon catalogue, reloaded when older than ``refresh_s``.

    When a reload fails, the last good catalogue is kept and the failure only
    raised if there never was one. Thread-safe: one reload at a time.
    """

    def __init__(self, client: CentralClient, refresh_s: float):
        self._client = client
        self._refresh_s = refresh_s
        self._catalogue: Optional[dict[int, tuple[Coupon, ...]]] = None
        self._loaded_at: Optional[float] = None  # monotonic; None: never loaded
        self._lock = threading.Lock()

    def coupons_of(self, department_id: int) -> Optional[tuple[Coupon, ...]]:
        """The department's coupons, or None for a department the central lacks."""
        with self._lock:
            if self._loaded_at is None or time.monotonic() - self._loaded_at > self._refresh_s:
                self._reload()
            assert self._catalogue is not None
            return self._catalogue.get(department_id)

    def _reload(self) -> None:
        try:
            self._catalogue = self._client.coupon_catalogue()
            self._loaded_at = time.monotonic()
        except CentralUnavailable:
            if self._catalogue is None:
                raise
            self._loaded_at = time.monotonic() - self._refresh_s / 2  # retry soon
