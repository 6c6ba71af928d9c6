"""A latency histogram made of Beam counters, so that runners report it.

Beam's distributions give count, sum, min and max only; to read p50 and p99
the latency is also counted into cumulative buckets ``<name>_le_<bound>``
(milliseconds), from which ``percentile`` interpolates nothing: it returns the
upper bound of the bucket that holds the quantile. The bounds are 10 to 20 ms apart below
100 ms, where the latency goals lie (p50 at 50 focus events/s ≤ 100 ms).
"""

from __future__ import annotations

from typing import Mapping, Optional

from apache_beam.metrics import Metrics

BOUNDS_MS = (
    5,
    10,
    20,
    30,
    40,
    50,
    60,
    80,
    100,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    5000,
    7500,
    10000,
    20000,
    60000,
)


class LatencyHistogram:
    """Records latencies in ms into a distribution and bucket counters."""

    def __init__(self, namespace: str, name: str):
        self._distribution = Metrics.distribution(namespace, name)
        self._buckets = [Metrics.counter(namespace, f'{name}_le_{bound}') for bound in BOUNDS_MS]
        self._over = Metrics.counter(namespace, f'{name}_le_inf')

    def update(self, latency_ms: float) -> None:
        self._distribution.update(int(latency_ms))
        for bound, bucket in zip(BOUNDS_MS, self._buckets):
            if latency_ms <= bound:
                bucket.inc()
                return
        self._over.inc()


def percentile(bucket_counts: Mapping[str, int], quantile: float) -> Optional[float]:
    """The bucket bound (ms) at ``quantile`` of counts keyed by ``str(bound)`` or 'inf'."""
    ordered = [(float(b), bucket_counts.get(str(b), 0)) for b in BOUNDS_MS]
    ordered.append((float('inf'), bucket_counts.get('inf', 0)))
    total = sum(count for _, count in ordered)
    if total == 0:
        return None
    seen = 0
    for bound, count in ordered:
        seen += count
        if seen and seen >= quantile * total:
            return bound
    return float('inf')
