"""The running pipeline's Beam metrics: one query, a summary for logs and the demo.

``query`` reads the runner's metrics once into a ``MetricsSnapshot`` (the pipeline's own
counters and distributions, summed over steps; on Flink, whose job service answers none while a
streaming job runs, pipeline.flink.job reads Flink's REST API instead); ``report`` logs its
summary, writes it to
``METRICS_FILE`` if set, and returns the snapshot (pipeline.exporter serves it to
Prometheus).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Callable, Optional

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult

from transforms.latency import percentile

_LOGGER = logging.getLogger(__name__)
LATENCY = 'predictions.focus_to_prediction_ms'
# from a focus event's Kafka timestamp to the pipeline reading it: what the read adds
READ_DELAY = 'events.focus_read_delay_ms'
HISTOGRAMS = {LATENCY: 'focus_to_prediction', READ_DELAY: 'focus_read_delay'}


@dataclasses.dataclass(frozen=True)
class MetricsSnapshot:
    """Counters by 'namespace.name', and distributions as (count, sum)."""

    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    distributions: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    def latency_buckets(self, histogram: str) -> dict[str, int]:
        """A latency histogram (``HISTOGRAMS``): count per bucket bound (ms, or 'inf')."""
        prefix = f'{histogram}_le_'
        return {
            name[len(prefix) :]: count
            for name, count in self.counters.items()
            if name.startswith(prefix)
        }

    def summary(self) -> dict[str, Any]:
        """Counters but the histograms' buckets, plus each histogram's p50, p99 (bucket bounds)
        and mean."""
        summary: dict[str, Any] = {
            name: count for name, count in sorted(self.counters.items()) if '_le_' not in name
        }
        for histogram, short in HISTOGRAMS.items():
            buckets = self.latency_buckets(histogram)
            summary[f'{short}_p50_ms'] = percentile(buckets, 0.50)
            summary[f'{short}_p99_ms'] = percentile(buckets, 0.99)
            count, total_ms = self.distributions.get(histogram, (0, 0))
            summary[f'{short}_mean_ms'] = round(total_ms / count, 1) if count else None
        return summary


def _name(result: Any) -> Optional[str]:
    metric = result.key.metric
    if metric.namespace.startswith('beam'):
        return None  # the runner's own
    return f'{metric.namespace}.{metric.name}'


def query(result: PipelineResult) -> MetricsSnapshot:
    """The pipeline's metrics now, summed over steps."""
    # The portable runner caches its first metrics answer; ask afresh.
    if hasattr(result, '_metrics'):
        result._metrics = None  # pylint: disable=protected-access
    metrics = result.metrics().query(MetricsFilter())
    counters: dict[str, int] = {}
    for counter in metrics['counters']:
        name = _name(counter)
        if name:
            counters[name] = counters.get(name, 0) + (counter.committed or counter.attempted or 0)
    distributions: dict[str, tuple[int, int]] = {}
    for distribution in metrics['distributions']:
        name, data = _name(distribution), distribution.committed or distribution.attempted
        if name and data:
            count, total = distributions.get(name, (0, 0))
            distributions[name] = (count + data.count, total + data.sum)
    return MetricsSnapshot(counters, distributions)


def report(
    source: Callable[[], MetricsSnapshot], metrics_file: Optional[str]
) -> Optional[MetricsSnapshot]:
    """Logs one summary line of ``source``'s snapshot (``functools.partial(query, result)``, or
    pipeline.flink.job on Flink) and, if asked, writes the summary as JSON; returns the
    snapshot. A runner that does not answer is logged, not raised: reporting never stops the job.
    """
    try:
        snapshot = source()
    except Exception as error:  # pylint: disable=broad-except
        _LOGGER.warning('metrics unavailable: %s', error)
        return None
    summary = snapshot.summary()
    _LOGGER.info('metrics: %s', ', '.join(f'{k}={v}' for k, v in summary.items()))
    if metrics_file:
        path = Path(metrics_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix('.tmp')
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(path)
    return snapshot
