"""The flags of the jobs on the past, beside the service's own settings (pipeline.options).

``--replay_from`` / ``--replay_to``: the time range, ISO-8601 (no zone means UTC), of the
records' Kafka timestamps (for a re-drive: of the dead letters'). The service's settings
(topics, central, scorer, COUPON_PREDICTION_THRESHOLD, TOP_K, ...) keep their flags and
variables: a what-if changes them on the command line. Every check runs before anything is
written; a flag nobody declares is an error, not a warning (a mistyped ``--prediction_treshold``
would otherwise replay with the live threshold).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.options import ConfigError, CouponScoringOptions, Settings, resolve_settings
from transforms.events import InvalidEvent, parse_event_time


class ReplayOptions(PipelineOptions):
    """Flags of ``python -m pipeline.replay`` and ``python -m pipeline.replay.redrive``."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument('--replay_from', help='start of the time range, ISO-8601 (required)')
        parser.add_argument('--replay_to', help='end of the time range, excluded (required)')
        parser.add_argument(
            '--output_dir',
            help='replay: a new or empty directory for the predictions, the dead letters, '
            'the summary and the comparison report (required)',
        )
        parser.add_argument(
            '--output_topic',
            help='replay: also publish the predictions to this Kafka topic (never the live '
            'prediction topic, unless --to_live_topic)',
        )
        parser.add_argument(
            '--to_live_topic',
            action='store_true',
            default=False,
            help='replay: allow --output_topic to be the live prediction topic',
        )


@dataclasses.dataclass(frozen=True)
class TimeRangeFlags:
    from_ms: int
    to_ms: int
    from_text: str
    to_text: str


@dataclasses.dataclass(frozen=True)
class ReplayFlags:
    times: TimeRangeFlags
    output_dir: Optional[Path]
    output_topic: Optional[str]


def unknown_flags(options: PipelineOptions) -> list[str]:
    """The flags no PipelineOptions class declares (Beam only logs them)."""
    known = options.get_all_options()
    return sorted(set(options.get_all_options(retain_unknown_options=True)) - set(known))


def _time_flag(flags: dict, name: str) -> tuple[int, str]:
    text = flags.get(name)
    if not text:
        raise ConfigError(f'--{name} is required: an ISO-8601 time such as 2026-12-05T10:00:00Z')
    try:
        return int(parse_event_time(text) * 1000), text
    except InvalidEvent:
        raise ConfigError(
            f'--{name} = {text!r} is not an ISO-8601 time (such as 2026-12-05T10:00:00Z)'
        ) from None


def time_range_flags(options: PipelineOptions, now_ms: int) -> TimeRangeFlags:
    flags = options.view_as(ReplayOptions).get_all_options()
    from_ms, from_text = _time_flag(flags, 'replay_from')
    to_ms, to_text = _time_flag(flags, 'replay_to')
    if to_ms <= from_ms:
        raise ConfigError(f'--replay_to ({to_text}) must be after --replay_from ({from_text})')
    if from_ms >= now_ms:
        raise ConfigError(f'--replay_from ({from_text}) is in the future: nothing to replay')
    return TimeRangeFlags(from_ms, min(to_ms, now_ms), from_text, to_text)


def _output_dir(text: Optional[str]) -> Path:
    if not text:
        raise ConfigError('--output_dir is required: a new or empty directory')
    path = Path(text)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f'--output_dir {text!r} exists and is not an empty directory')
    parent = path.resolve().parent
    if not os.access(parent if not path.exists() else path, os.W_OK):
        raise ConfigError(f'--output_dir {text!r}: cannot write there')
    return path


def replay_flags(options: PipelineOptions, settings: Settings, now_ms: int) -> ReplayFlags:
    """The what-if's flags, checked; nothing is created yet."""
    flags = options.view_as(ReplayOptions)
    topic = flags.output_topic
    if topic == settings.prediction_topic and not flags.to_live_topic:
        raise ConfigError(
            f'--output_topic {topic!r} is the live prediction topic '
            '(COUPON_PREDICTION_TOPIC_NAME): add --to_live_topic if that is meant'
        )
    return ReplayFlags(time_range_flags(options, now_ms), _output_dir(flags.output_dir), topic)


def checked_settings(options: PipelineOptions, passed_on: frozenset = frozenset()) -> Settings:
    """The service's settings, after refusing flags nobody declares but those ``passed_on``
    (on Flink, the job server's own flags, which Beam's Python options do not declare)."""
    options.view_as(CouponScoringOptions)
    unknown = [name for name in unknown_flags(options) if name not in passed_on]
    if unknown:
        raise ConfigError('unknown flag(s): ' + ', '.join('--' + name for name in unknown))
    return resolve_settings(options)
