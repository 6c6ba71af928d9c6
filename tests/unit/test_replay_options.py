"""The replay's flags (pipeline/replay/options.py): checked before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.options import ConfigError
from pipeline.replay.options import checked_settings, replay_flags, time_range_flags

REQUIRED_ENV = {
    'ENTRY_EVENT_TOPIC_NAME': 'entry',
    'FOCUS_EVENT_TOPIC_NAME': 'focus',
    'COUPON_PREDICTION_TOPIC_NAME': 'predictions',
    'DEAD_LETTER_TOPIC_NAME': 'deadletters',
    'COUPON_SCORER_URL': 'http://127.0.0.1:8702/v1/models/coupon:predict',
    'CENTRAL_URL': 'http://127.0.0.1:8701',
}
NOW_MS = 1_780_000_000_000  # 2026-05-28


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    for name, value in REQUIRED_ENV.items():
        monkeypatch.setenv(name, value)


def test_times_are_iso_8601_with_utc_by_default():
    options = PipelineOptions(
        ['--replay_from=2026-01-01T10:00:00', '--replay_to=2026-01-01T12:00:00+01:00']
    )
    times = time_range_flags(options, NOW_MS)
    assert times.from_ms == 1_767_261_600_000
    assert times.to_ms - times.from_ms == 3_600_000


def test_a_range_that_reaches_into_the_future_ends_now():
    options = PipelineOptions(
        ['--replay_from=2026-01-01T00:00:00Z', '--replay_to=2999-01-01T00:00:00Z']
    )
    assert time_range_flags(options, NOW_MS).to_ms == NOW_MS


@pytest.mark.parametrize(
    'flags, message',
    [
        ([], '--replay_from is required'),
        (['--replay_from=2026-01-01T00:00:00Z'], '--replay_to is required'),
        (['--replay_from=monday', '--replay_to=2026-01-01T00:00:00Z'], 'not an ISO-8601'),
        (['--replay_from=2026-01-02T00:00:00Z', '--replay_to=2026-01-01T00:00:00Z'], 'after'),
        (['--replay_from=2999-01-01T00:00:00Z', '--replay_to=2999-01-02T00:00:00Z'], 'future'),
    ],
)
def test_bad_times_are_named(flags, message):
    with pytest.raises(ConfigError, match=message):
        time_range_flags(PipelineOptions(flags), NOW_MS)


def test_an_undeclared_flag_is_an_error_not_a_warning():
    with pytest.raises(ConfigError, match='--prediction_treshold'):
        checked_settings(PipelineOptions(['--prediction_treshold=0.3']))


def test_the_service_settings_are_the_live_ones_with_the_flags_given():
    settings = checked_settings(PipelineOptions(['--prediction_threshold=0.3', '--top_k=3']))
    assert (settings.prediction_threshold, settings.top_k) == (0.3, 3)
    assert settings.prediction_topic == 'predictions'


DAY = ['--replay_from=2026-01-01T00:00:00Z', '--replay_to=2026-01-02T00:00:00Z']


def test_the_live_prediction_topic_needs_to_live_topic(tmp_path: Path):
    flags = [*DAY, f'--output_dir={tmp_path / "out"}', '--output_topic=predictions']
    settings = checked_settings(PipelineOptions(flags))
    with pytest.raises(ConfigError, match='--to_live_topic'):
        replay_flags(PipelineOptions(flags), settings, NOW_MS)
    allowed = replay_flags(PipelineOptions([*flags, '--to_live_topic']), settings, NOW_MS)
    assert allowed.output_topic == 'predictions'


def test_the_output_directory_must_be_new_or_empty(tmp_path: Path):
    settings = checked_settings(PipelineOptions(DAY))
    assert replay_flags(PipelineOptions([*DAY, f'--output_dir={tmp_path}']), settings, NOW_MS)
    (tmp_path / 'old.jsonl').write_text('')
    with pytest.raises(ConfigError, match='not an empty directory'):
        replay_flags(PipelineOptions([*DAY, f'--output_dir={tmp_path}']), settings, NOW_MS)
    with pytest.raises(ConfigError, match='--output_dir is required'):
        replay_flags(PipelineOptions(DAY), settings, NOW_MS)
