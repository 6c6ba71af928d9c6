"""The fixed end-to-end scenario with KAFKA_IO=xlang: Java KafkaIO on Prism.

The same scenario and the same exact expected outputs as test_end_to_end.py, through
``python -m pipeline --runner=DirectRunner`` with Beam's cross-language ReadFromKafka /
WriteToKafka: the expansion service started from the launcher jar, the Java SDK harness
in the PROCESS environment. Skipped where the jars (scripts/bootstrap.sh) or Java are
missing. Prints the start-up time and the pipeline's latency figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.xlang.runtime import missing_runtime
from tests.integration.outcomes import (
    ScenarioRun,
    as_dead_letter,
    as_prediction,
    assert_counted,
    run_fixed_scenario,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xlang,
    pytest.mark.skipif(missing_runtime() is not None, reason=f'xlang runtime: {missing_runtime()}'),
]


def test_xlang_scenario_ends_as_exactly_the_expected_predictions_and_dead_letters(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    run = run_fixed_scenario(kafka, services, topics, tmp_path, KAFKA_IO='xlang')
    assert_exact_xlang_outcome(run)
    fault_figures.update(
        xlang_start_up_s=round(run.start_up_s, 1),
        p50_ms=run.metrics['focus_to_prediction_p50_ms'],
        p99_ms=run.metrics['focus_to_prediction_p99_ms'],
    )


def assert_exact_xlang_outcome(run: ScenarioRun) -> None:
    """Exactly the expected predictions and dead letters, every input offset committed."""
    expected = run.expected
    got = [as_prediction(m) for m in run.written]
    assert len(got) == len(set(got)), 'duplicate prediction results'
    assert set(got) == expected.predictions
    assert {as_dead_letter(m) for m in run.letters} == expected.dead_letters
    assert len(run.letters) == len(expected.dead_letters)
    assert_counted(run.metrics, 'predictions.written', len(expected.predictions))
    # KafkaIO commits nothing itself: CommitEndedOffsets commits every ended record.
    assert run.uncommitted == {}
