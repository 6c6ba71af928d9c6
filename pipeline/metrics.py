"""A summary of the running pipeline's Beam metrics, for logs and the demo."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult

from transforms.latency import percentile

_LOGGER = logging.getLogger(__name__)
_LATENCY = 'focus_to_prediction_ms'


def _query(result: PipelineResult) -> dict[str, Any]:
    # The portable runner caches its first metrics answer; ask afresh.
    if hasattr(result, '_metrics'):
        result._metrics = None  # pylint: disable=protected-access
    return result.metrics().query(MetricsFilter())


def summarize(result: PipelineResult) -> dict[str, Any]:
    """Counters by 'namespace.name', plus latency percentiles, summed over steps."""
    metrics = _query(result)
    counters: dict[str, int] = {}
    for counter in metrics['counters']:
        if counter.key.metric.namespace.startswith('beam'):
            continue  # the runner's own
        name = f'{counter.key.metric.namespace}.{counter.key.metric.name}'
        counters[name] = counters.get(name, 0) + (counter.committed or counter.attempted or 0)
    buckets = {
        name.rsplit('_le_', 1)[1]: count
        for name, count in counters.items()
        if name.startswith(f'predictions.{_LATENCY}_le_')
    }
    summary: dict[str, Any] = {
        name: count for name, count in sorted(counters.items()) if '_le_' not in name
    }
    summary['focus_to_prediction_p50_ms'] = percentile(buckets, 0.50)
    summary['focus_to_prediction_p99_ms'] = percentile(buckets, 0.99)
    return summary


def report(result: PipelineResult, metrics_file: Optional[str]) -> dict[str, Any]:
    """Logs one summary line and, if asked, writes the summary as JSON.

    A runner that does not answer is logged, not raised: reporting never stops the job.
    """
    try:
        summary = summarize(result)
    except Exception as error:  # pylint: disable=broad-except
        _LOGGER.warning('metrics unavailable: %s', error)
        return {}
    _LOGGER.info('metrics: %s', ', '.join(f'{k}={v}' for k, v in summary.items()))
    if metrics_file:
        path = Path(metrics_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix('.tmp')
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(path)
    return summary
