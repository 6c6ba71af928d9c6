"""ScoreCoupons: enriched focus events in, a prediction per candidate coupon out.

In:  PCollection[EnrichedFocus].
Out: a tagged result with
     ``scored``       PCollection[ScoredFocus];
     ``dead_letters`` PCollection[DeadLetter] (reason ``scoring_failed``) for
                      every focus event of a batch the scorer refused after
                      all retries.
State: none in the pipeline; Beam's RunInference keeps a client per process.

Built on Beam's ``RunInference`` with a ``RemoteModelHandler``
(``CouponScorerHandler``): BatchElements groups focus events within a bundle
(up to ``max_batch`` events and ``max_rows`` coupon rows), the rows of a
whole batch go to the scorer in one HTTP request, failed requests (connection
errors, timeouts, 429, 5xx) are retried with exponential backoff starting at
0.2 s and capped at 5 s (Beam's own default starts at 5 s, too slow for a
customer standing at a screen), and a reactive throttler backs off client-side
when the scorer keeps failing (its delays are counted in
``scorer.cumulativeThrottlingSeconds``). Each failed attempt is counted in
``scorer.failed_requests_<kind>`` (http_429, http_5xx, timeout, connection).

The scorer contract (``schema/prediction.schema.json``) is KServe v1 /
TensorFlow Serving REST: POST {"instances": [row, ...]} answered by
{"predictions": [p, ...]} in the same order. With a token, every request
carries ``Authorization: Bearer <token>``; the token is kept out of reprs and
of the errors that reach logs and dead letters.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Iterable, Optional, Sequence

import apache_beam as beam
import orjson
import requests
from apache_beam.io.components.adaptive_throttler import ReactiveThrottler
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import RemoteModelHandler, RunInference
from apache_beam.utils import retry

from transforms.central import bearer_headers, masked
from transforms.domain import CouponPrediction, EnrichedFocus, ScoredFocus
from transforms.messages import dead_letter_for

_LOGGER = logging.getLogger(__name__)


class ScorerError(RuntimeError):
    """The scorer did not answer with predictions; ``retryable`` says if a retry may help."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


def _is_retryable(error: Exception) -> bool:
    if isinstance(error, ScorerError):
        return error.retryable
    return isinstance(error, requests.RequestException)


@dataclasses.dataclass(frozen=True)
class ScorerConfig:
    url: str
    timeout_s: float = 5.0
    retry_s: float = 60.0
    max_rows: int = 2000
    token: Optional[str] = dataclasses.field(default=None, repr=False)


RETRY_INITIAL_DELAY_S = 0.2
RETRY_MAX_DELAY_S = 5.0
_MAX_RETRIES = 10_000  # Beam's limit; the time budget (retry_s) ends the retries


def scorer_rows(enriched: EnrichedFocus) -> list[dict[str, Any]]:
    """The (customer, coupon) rows of a scorer request for one focus event, a row per
    candidate coupon (the customer's features are read once for all of them)."""
    focus, features = enriched.focus, enriched.context.as_dict()
    return [
        {
            'customer_id': focus.customer_id,
            'coupon_id': coupon.coupon_id,
            'department_id': focus.department_id,
            **features,
            'coupon_mean_discount': coupon.mean_coupon_discount,
            'coupon_mean_item_price': coupon.mean_item_price,
        }
        for coupon in enriched.coupons
    ]


def _rows(batch: Sequence[EnrichedFocus]) -> list[dict[str, Any]]:
    return [row for enriched in batch for row in scorer_rows(enriched)]


def _split_by_focus(
    batch: Sequence[EnrichedFocus], predictions: Sequence[float]
) -> list[ScoredFocus]:
    scored, start = [], 0
    for enriched in batch:
        end = start + len(enriched.coupons)
        scored.append(
            ScoredFocus(
                enriched.focus,
                tuple(
                    CouponPrediction(coupon.coupon_id, float(p))
                    for coupon, p in zip(enriched.coupons, predictions[start:end])
                ),
            )
        )
        start = end
    return scored


def scorer_session(config: ScorerConfig) -> requests.Session:
    """A keep-alive session to the scorer: its token, and JSON bodies (sent as bytes)."""
    session = requests.Session()
    session.headers.update(bearer_headers(config.token))
    session.headers['Content-Type'] = 'application/json'  # the bodies are orjson's bytes
    return session


class CouponScorerHandler(RemoteModelHandler[EnrichedFocus, ScoredFocus, requests.Session]):
    """Scores a batch of focus events in one request to the scorer."""

    def __init__(self, config: ScorerConfig):
        # Retries are run_inference's below, not the base class's 5 s-first backoff.
        super().__init__(namespace='scorer', num_retries=0, throttle_delay_secs=1)
        self._config = config
        # The attempts' own throttler: sharing the base class's, which counts the batch as a
        # request before its first attempt, made every first attempt of a 1 s window see an
        # unanswered request and wait 1 s with probability 1/2 (a healthy scorer; benchmark).
        self._attempt_throttler = ReactiveThrottler(
            window_ms=1000,
            bucket_ms=1000,
            overload_ratio=2,
            namespace='scorer',
            throttle_delay_secs=1,
        )
        self._requests = Metrics.counter('scorer', 'requests')
        self._failures = {
            kind: Metrics.counter('scorer', f'failed_requests_{kind}')
            for kind in ('http_429', 'http_5xx', 'http_4xx', 'timeout', 'connection', 'bad_answer')
        }
        self._rows_per_request = Metrics.distribution('scorer', 'rows_per_request')
        self._latency = Metrics.distribution('scorer', 'latency_ms')

    def create_client(self) -> requests.Session:
        return scorer_session(self._config)

    def batch_elements_kwargs(self) -> dict[str, Any]:
        # Batches are weighed in coupon rows: one request carries at most max_rows.
        return {
            'min_batch_size': 1,
            'max_batch_size': self._config.max_rows,
            'element_size_fn': lambda enriched: len(enriched.coupons),
        }

    def request(
        self,
        batch: Sequence[EnrichedFocus],
        model: requests.Session,
        inference_args: Optional[dict[str, Any]] = None,
    ) -> Iterable[ScoredFocus]:
        # Retries here rather than the base class's (which RunInference forbids to
        # override): its backoff starts at 5 s, too slow for a customer at a screen.
        with_retries = retry.with_exponential_backoff(
            num_retries=_MAX_RETRIES,
            stop_after_secs=self._config.retry_s,
            initial_delay_secs=RETRY_INITIAL_DELAY_S,
            max_delay_secs=RETRY_MAX_DELAY_S,
            retry_filter=_is_retryable,
            logger=_log_retry,
        )
        rows = _rows(batch)
        return _split_by_focus(batch, with_retries(self._attempt)(rows, model))

    def _attempt(self, rows: list[dict[str, Any]], model: requests.Session) -> list[float]:
        """One throttled request: the throttler delays it while the scorer keeps failing."""
        self._attempt_throttler.throttle()
        started = time.monotonic()
        self._requests.inc()
        self._rows_per_request.update(len(rows))
        try:
            response = model.post(
                self._config.url,
                # orjson: about ten times json's speed on the rows (json's encoder had 12 %
                # of the pipeline's samples at 300 focus events/s)
                data=orjson.dumps({'instances': rows}),
                timeout=self._config.timeout_s,
            )
        except requests.Timeout:
            self._failures['timeout'].inc()
            raise
        except requests.RequestException:
            self._failures['connection'].inc()
            raise
        self._latency.update(int((time.monotonic() - started) * 1000))
        predictions = self._predictions(response, len(rows))
        self._attempt_throttler.successful_request(time.time() * 1000)
        return predictions

    def _predictions(self, response: requests.Response, rows: int) -> list[float]:
        """The answer's predictions, or a ScorerError saying whether to retry."""
        status = response.status_code
        if status != 200:
            kind = 'http_429' if status == 429 else 'http_5xx' if status >= 500 else 'http_4xx'
            self._failures[kind].inc()
            text = masked(response.text, self._config.token)
            raise ScorerError(f'HTTP {status}: {text[:200]}', retryable=kind != 'http_4xx')
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError as error:  # a garbled answer: a retry may get a good one
            self._failures['bad_answer'].inc()
            raise ScorerError(f'the answer is not JSON: {error}', retryable=True) from error
        predictions = answer.get('predictions') if isinstance(answer, dict) else None
        if not isinstance(predictions, list) or len(predictions) != rows:
            self._failures['bad_answer'].inc()
            raise ScorerError(
                f'expected {rows} predictions, got {predictions!r:.200}', retryable=False
            )
        return predictions


def _log_retry(message: str, *args: Any) -> None:
    """Beam's retry report, shortened to its first line (no traceback per retry)."""
    _LOGGER.warning(message.split(' Traceback')[0], *args[:3])


def _failed_batch_dead_letters(failure: tuple[Sequence[EnrichedFocus], Exception]):
    batch, error = failure
    Metrics.counter('dead_letters', 'scoring_failed').inc(len(batch))
    for enriched in batch:
        yield dead_letter_for(enriched.focus, 'scoring_failed', str(error))


class ScoreCoupons(beam.PTransform):
    """Scores every candidate coupon of every focus event, in batches."""

    def __init__(self, config: ScorerConfig):
        super().__init__()
        self._config = config

    def expand(self, enriched: beam.PCollection[EnrichedFocus]) -> dict[str, beam.PCollection]:
        scored, failures = (
            enriched
            | 'RunInference'
            >> RunInference(CouponScorerHandler(self._config)).with_exception_handling()
        )
        dead_letters = failures.failed_inferences | 'FailedBatches' >> beam.FlatMap(
            _failed_batch_dead_letters
        )
        return {'scored': scored, 'dead_letters': dead_letters}


def scorer_problem(config: ScorerConfig) -> Optional[str]:
    """Why the scorer cannot score now (no answer, or a 5xx / 429 to an empty request), or
    None: for jobs that should not start against a scorer that is down."""
    try:
        response = requests.post(
            config.url,
            json={'instances': []},
            headers=bearer_headers(config.token),
            timeout=config.timeout_s,
        )
    except requests.RequestException as error:
        return f'no answer from {config.url}: {type(error).__name__}'
    if response.status_code >= 500 or response.status_code == 429:
        return f'{config.url} answered HTTP {response.status_code}'
    return None
