"""The whole pipeline on --runner=DirectRunner against the real broker and stand-ins.

A fixed scenario (225 customers entering and stopping in departments, some
focus events ahead of their entry, some customers unknown to the central,
one unknown department, and the bad-input corpus of tests/corpus.py among
them) is produced to Kafka while
the pipeline runs; the prediction and dead-letter topics must then hold
exactly the messages computed independently from the central's database and
the scorer's weights.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from tests.integration.outcomes import (
    ScenarioRun,
    as_dead_letter,
    as_prediction,
    assert_accounted,
    assert_counted,
    run_fixed_scenario,
)
from tests.integration.scenario import Scenario

pytestmark = pytest.mark.integration


MAX_ORIGINAL_BYTES = 64 * 1024  # DEAD_LETTER_MAX_ORIGINAL_BYTES' default


def original_of(letter: dict) -> tuple | None:
    """What a dead letter says of its original: its first bytes, size and SHA-256."""
    encoded = letter['original_base64']
    if encoded is None:
        return None
    return (
        base64.b64decode(encoded),
        letter['original_size'],
        letter['original_sha256'],
        letter['truncated'],
    )


def expected_original(value: bytes | None) -> tuple | None:
    if value is None:
        return None
    return (
        value[:MAX_ORIGINAL_BYTES],
        len(value),
        hashlib.sha256(value).hexdigest(),
        len(value) > MAX_ORIGINAL_BYTES,
    )


def test_scenario_ends_as_exactly_the_expected_predictions_and_dead_letters(
    kafka, services, topics, tmp_path: Path, fault_figures: dict
):
    run = run_fixed_scenario(kafka, services, topics, tmp_path)
    metrics = assert_exact_outcome(run)
    fault_figures.update(
        no_fault=True,
        p50_ms=metrics['focus_to_prediction_p50_ms'],
        p99_ms=metrics['focus_to_prediction_p99_ms'],
    )


def assert_exact_outcome(run: ScenarioRun) -> dict:
    """The fixed scenario's run ended as exactly the expected predictions and dead letters,
    every input offset committed, and no counter counting more than there was; returns the
    metrics."""
    scenario, expected, written, letters = Scenario(), run.expected, run.written, run.letters

    got = [as_prediction(m) for m in written]
    assert len(got) == len(set(got)), 'duplicate prediction results'
    assert set(got) == expected.predictions
    assert all(m['key'] == str(m['payload']['customer_id']).encode() for m in written)
    assert all(m['event_type'] == 'prediction result' for m in written)

    assert {as_dead_letter(m) for m in letters} == expected.dead_letters
    assert len(letters) == len(expected.dead_letters)
    originals = {
        position: expected_original(message.value)
        for message, position in run.sent
        if message.kind not in ('entry', 'focus')
    }
    assert {
        as_dead_letter(m)[1]: original_of(m) for m in letters if m['reason'] != 'unknown_department'
    } == originals

    # Every record has ended, so the group has committed every input offset: exact, in Kafka.
    assert run.uncommitted == {}
    # The runner's counters: never more than there were (see outcomes.assert_accounted).
    metrics = run.metrics
    assert_accounted(metrics, expected)
    assert_counted(metrics, 'contexts.unknown_on_entry', len(scenario.unknown))
    # A focus event with no context in its session fetches it at once (the early customers',
    # the ones who never entered): their exact predictions above show it was fetched.
    assert (
        metrics['sessions.focus_enriched_from_state'] + metrics['contexts.fetched_on_demand']
        <= expected.focus_count
    )
    assert_counted(metrics, 'predictions.written', len(expected.predictions))
    return metrics
