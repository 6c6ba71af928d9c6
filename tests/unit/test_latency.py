"""percentile: the upper bound of the latency bucket holding a quantile."""

from __future__ import annotations

import math

from transforms.latency import BOUNDS_MS, percentile


def buckets(**counts: int) -> dict[str, int]:
    """Counts keyed as pipeline/metrics.py keys them: ``le_50=3`` -> ``{'50': 3}``."""
    return {name.removeprefix('le_'): count for name, count in counts.items()}


def test_no_counts_gives_none():
    assert percentile({}, 0.5) is None


def test_all_zero_counts_gives_none():
    assert percentile({str(b): 0 for b in BOUNDS_MS}, 0.99) is None


def test_single_bucket_holds_every_quantile():
    counts = buckets(le_200=10)

    assert [percentile(counts, q) for q in (0.01, 0.5, 0.99, 1.0)] == [200.0] * 4


def test_median_is_the_bound_where_half_the_counts_are_reached():
    counts = buckets(le_5=50, le_10=50)

    assert percentile(counts, 0.50) == 5.0


def test_p99_falls_in_the_tail_bucket():
    counts = buckets(le_50=90, le_100=9, le_1000=1)

    assert percentile(counts, 0.50) == 50.0
    assert percentile(counts, 0.99) == 100.0
    assert percentile(counts, 1.0) == 1000.0


def test_counts_over_the_largest_bound_give_infinity():
    counts = buckets(le_10=1, le_inf=99)

    assert math.isinf(percentile(counts, 0.5))


def test_keys_follow_str_of_every_bound():
    for bound in BOUNDS_MS:
        assert percentile({str(bound): 1}, 0.5) == float(bound)


def test_zero_quantile_is_the_first_non_empty_bucket():
    assert percentile(buckets(le_1000=10), 0.0) == 1000.0
