"""The operator's view of the running pipeline: Prometheus metrics and a health endpoint.

With ``METRICS_PORT`` set, the driver serves on that port (all interfaces):

``GET /metrics``
    Prometheus' text format (prometheus-client): every counter of the pipeline as
    ``coupon_scoring_<namespace>_<name>_total`` in snake_case (``counter_name``: Beam's
    ``scorer.cumulativeThrottlingSeconds`` is
    ``coupon_scoring_scorer_cumulative_throttling_seconds_total``), the focus-to-prediction
    latency as the histogram ``coupon_scoring_focus_to_prediction_seconds``, what the read
    adds before it (from a focus event's Kafka timestamp to its reading) as
    ``coupon_scoring_focus_read_delay_seconds``, the consumer
    group's lag per input partition as ``coupon_scoring_consumer_lag{topic,partition}`` (end
    offset minus committed offset), and ``coupon_scoring_job_running``. The Beam metrics and
    the lag are refreshed by the driver every ``METRICS_INTERVAL_SECONDS``.
``GET /health``
    200 when the job is running, the read polled Kafka in the last ``READ_STALE_S``
    seconds (KAFKA_IO=xlang's read runs in Java: the job's state alone) and no input partition
    goes unread (pipeline.unread: added while KafkaIO reads), else 503; JSON
    ``{"status", "job_state", "seconds_since_read", "unread_partitions"}`` either way. The
    unread partitions are also the gauge ``coupon_scoring_unread_partitions``.

State: the latest metrics snapshot and lag, replaced whole by the driver's thread and read
by the server's threads.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Optional

from apache_beam.runners.runner import PipelineResult, PipelineState
from kafka import TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from pipeline.metrics import HISTOGRAMS, LATENCY, READ_DELAY, MetricsSnapshot
from transforms.kafka import KafkaConnection, RunProgress, described_partitions
from transforms.latency import BOUNDS_MS

_LOGGER = logging.getLogger(__name__)
PREFIX = 'coupon_scoring'
READ_STALE_S = 30.0
# what each latency histogram (pipeline.metrics.HISTOGRAMS) measures: its help text
HISTOGRAM_HELP = {
    LATENCY: 'from reading a focus event to handing its prediction results to the producer',
    READ_DELAY: "from a focus event's Kafka timestamp to its reading (the producer's clock, or "
    "the broker's with LogAppendTime)",
}


# Where a camelCase or acronym word ends: 'run|Inference', 'cumulative|Throttling', 'HTTP|Error'.
_WORD_END = re.compile(r'(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])')
_NOT_A_WORD = re.compile(r'[^a-z0-9]+')


def counter_name(beam_name: str) -> str:
    """The Prometheus name (without ``_total``) of the Beam counter ``namespace.name``, in the
    snake_case promtool asks for: ``RunInference.num_inferences`` is
    ``coupon_scoring_run_inference_num_inferences``. The word ``counter`` is left out (promtool:
    a name should not include its type), so ``RunInference.failed_batches_counter`` is
    ``coupon_scoring_run_inference_failed_batches``."""
    words = _NOT_A_WORD.split(_WORD_END.sub('_', beam_name).lower())
    return '_'.join([PREFIX, *(word for word in words if word and word != 'counter')])


class ConsumerLag:
    """End offset minus the group's committed offset, per input partition. The partitions are
    listed at each read, so that those added while the pipeline runs are shown too."""

    def __init__(self, connection: KafkaConnection, topics: list[str]):
        self._topics = topics
        self._admin = connection.admin('lag')
        self._consumer = connection.consumer('lag')

    def read(self) -> dict[TopicPartition, int]:
        partitions = described_partitions(self._admin, self._topics)
        ends = self._consumer.end_offsets(partitions)
        return {tp: ends[tp] - (self._consumer.committed(tp) or 0) for tp in partitions}

    def close(self) -> None:
        self._admin.close()
        self._consumer.close()


class PipelineStatus:
    """What the endpoints show: the job's state, the read's progress, the latest metrics."""

    def __init__(self, run: RunProgress, python_read: bool):
        self.result: Optional[PipelineResult] = None  # set once the job is submitted
        self._run = run
        self._python_read = python_read
        self.snapshot = MetricsSnapshot()
        self.lag: dict[TopicPartition, int] = {}
        self.unread_partitions: list[str] = []  # set by the driver (pipeline.unread)

    def health(self) -> tuple[bool, dict[str, Any]]:
        state = str(self.result.state) if self.result else 'STARTING'
        since_read = self._run.seconds_since_read()
        reading = not self._python_read or (since_read is not None and since_read < READ_STALE_S)
        healthy = state == PipelineState.RUNNING and reading and not self.unread_partitions
        return healthy, {
            'status': 'ok' if healthy else 'unhealthy',
            'job_state': state,
            'seconds_since_read': None if since_read is None else round(since_read, 1),
            'unread_partitions': self.unread_partitions,
        }

    def collect(self) -> Iterator[Any]:
        """The Prometheus metric families (a prometheus-client custom collector)."""
        snapshot = self.snapshot
        yield from self._counters(snapshot)
        for histogram, name in HISTOGRAMS.items():
            yield self._latency_histogram(snapshot, histogram, name)
        lag = GaugeMetricFamily(
            f'{PREFIX}_consumer_lag',
            'records of the input partition not yet committed by the group',
            labels=['topic', 'partition'],
        )
        for tp, records in sorted(self.lag.items()):
            lag.add_metric([tp.topic, str(tp.partition)], records)
        yield lag
        unread = GaugeMetricFamily(
            f'{PREFIX}_unread_partitions',
            'input partitions added while the job runs that its read does not read',
        )
        unread.add_metric([], len(self.unread_partitions))
        yield unread
        running = GaugeMetricFamily(f'{PREFIX}_job_running', '1 while the job is running')
        running.add_metric([], float(self.health()[1]['job_state'] == PipelineState.RUNNING))
        yield running

    @staticmethod
    def _counters(snapshot: MetricsSnapshot) -> Iterator[CounterMetricFamily]:
        """The Beam counters but the histogram's buckets; Beam names that map to one Prometheus
        name (``read_store.focus``, ``read_store_focus``) are summed into it, as a name twice
        would make the whole scrape invalid."""
        beam_names: dict[str, list[str]] = {}
        for beam_name in sorted(snapshot.counters):
            if '_le_' not in beam_name:
                beam_names.setdefault(counter_name(beam_name), []).append(beam_name)
        for name, sources in sorted(beam_names.items()):
            family = CounterMetricFamily(name, 'Beam counter ' + ', '.join(sources))
            family.add_metric([], sum(snapshot.counters[source] for source in sources))
            yield family

    @staticmethod
    def _latency_histogram(
        snapshot: MetricsSnapshot, histogram: str, name: str
    ) -> HistogramMetricFamily:
        counts = snapshot.latency_buckets(histogram)
        buckets, cumulative = [], 0
        for bound in (*BOUNDS_MS, 'inf'):
            cumulative += counts.get(str(bound), 0)
            upper = '+Inf' if bound == 'inf' else str(bound / 1000)
            buckets.append((upper, cumulative))
        _, total_ms = snapshot.distributions.get(histogram, (0, 0))
        return HistogramMetricFamily(
            f'{PREFIX}_{name}_seconds',
            HISTOGRAM_HELP[histogram],
            buckets=buckets,
            sum_value=total_ms / 1000,
        )


class OperatorView:
    """The HTTP server of /metrics and /health, and the lag it refreshes with the metrics."""

    def __init__(self, port: int, status: PipelineStatus, lag: Optional[ConsumerLag]):
        self.status = status
        self._lag = lag
        registry = CollectorRegistry()
        registry.register(status)
        self._server = ThreadingHTTPServer(('', port), _handler(status, registry))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        _LOGGER.info('metrics on http://localhost:%d/metrics, health on /health', port)

    def refresh(self, snapshot: Optional[MetricsSnapshot]) -> None:
        """Takes the driver's latest metrics, and reads the lag afresh."""
        if snapshot is not None:
            self.status.snapshot = snapshot
        if self._lag is not None:
            try:
                self.status.lag = self._lag.read()
            except Exception as error:  # pylint: disable=broad-except
                _LOGGER.warning('consumer lag unavailable: %s', error)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._lag is not None:
            self._lag.close()


def _handler(status: PipelineStatus, registry: CollectorRegistry) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == '/metrics':
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif self.path == '/health':
                healthy, body = status.health()
                self._send(200 if healthy else 503, 'application/json', json.dumps(body).encode())
            else:
                self._send(404, 'text/plain', b'/metrics or /health\n')

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass  # scrapes are not news

    return Handler
