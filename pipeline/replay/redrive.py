"""python -m pipeline.replay.redrive: the dead letters of an outage, scored again once it is
over, and their predictions published to the live topic once.

  python -m pipeline.replay.redrive --runner=DirectRunner \\
      --replay_from=2026-12-05T10:00:00Z --replay_to=2026-12-05T11:00:00Z

Takes the dead letters written to DEAD_LETTER_TOPIC_NAME in the range, of the retryable
reasons (``scoring_failed``, ``publish_failed``, ``context_fetch_failed``); reads each one's
original record again from its source topic and offset (never the letter's truncated copy);
leaves out the records retention deleted (reported by position) and the focus events whose
predictions are on COUPON_PREDICTION_TOPIC_NAME already (by ``focus_event_id``: a second
re-drive of the same range publishes nothing); and runs the live transforms on the rest in a
bounded job that publishes to the live prediction topic, and what fails again to the
dead-letter topic (a later re-drive takes it). An entry event is re-driven too: its context is
fetched, it has no prediction of its own. Prints a summary (JSON). Exit codes: 0 done, 1 the
job failed, 2 a bad flag or setting, 3 no dead letter in the range, 4 the scorer is down.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import sys
from typing import Iterable, Sequence

from apache_beam.options.pipeline_options import PipelineOptions
from kafka import TopicPartition

from pipeline.options import ConfigError, Settings
from pipeline.replay import driver
from pipeline.replay.job import JobInput, Outputs
from pipeline.replay.options import ReplayOptions, TimeRangeFlags, time_range_flags
from pipeline.replay.report import json_objects
from pipeline.wiring import kafka_connection
from transforms.domain import SourcePosition
from transforms.kafka import (
    KafkaConnection,
    OffsetSpan,
    first_offsets,
    read_spans,
    spans_between,
)

PROG = 'python -m pipeline.replay.redrive'
RETRYABLE = ('scoring_failed', 'publish_failed', 'context_fetch_failed')
# How long before its source record a prediction of it may have been written: none can be
# (a prediction follows its focus event); this margin covers producers' clocks.
CLOCK_MARGIN_MS = 5 * 60 * 1000
_LOGGER = logging.getLogger('pipeline.replay')


@dataclasses.dataclass
class Triage:
    """The range's dead letters, and what becomes of their sources."""

    letters: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    sources: set[SourcePosition] = dataclasses.field(default_factory=set)
    other_topics: int = 0
    gone: list[str] = dataclasses.field(default_factory=list)


def _source(letter: dict) -> SourcePosition | None:
    try:
        return SourcePosition(
            str(letter['source_topic']),
            int(letter['source_partition']),
            int(letter['source_offset']),
        )
    except (KeyError, TypeError, ValueError):
        return None


def triage(kafka: KafkaConnection, settings: Settings, times: TimeRangeFlags) -> Triage:
    """The retryable dead letters of the range and their sources on the input topics."""
    found = spans_between(kafka, [settings.dead_letter_topic], times.from_ms, times.to_ms)
    if not found.spans:
        raise driver.NothingToDo(
            f'no dead letter in {settings.dead_letter_topic} between {times.from_text} and '
            f'{times.to_text}'
        )
    records = read_spans(kafka, found.spans)
    in_range = (r.value for r in records if times.from_ms <= r.timestamp_ms < times.to_ms)
    result = Triage()
    inputs = (settings.entry_topic, settings.focus_topic)
    for letter in json_objects(in_range):
        reason = letter.get('reason')
        result.letters[str(reason)] += 1
        source = _source(letter) if reason in RETRYABLE else None
        if source is not None and source.topic in inputs:
            result.sources.add(source)
        elif source is not None:
            result.other_topics += 1
    return result


def _drop_gone(kafka: KafkaConnection, found: Triage) -> None:
    """Leaves out the sources retention deleted, noting their positions."""
    partitions = sorted({TopicPartition(s.topic, s.partition) for s in found.sources})
    kept_from = first_offsets(kafka, partitions)
    gone = {s for s in found.sources if s.offset < kept_from[TopicPartition(s.topic, s.partition)]}
    found.sources -= gone
    found.gone = sorted(s.event_id for s in gone)
    for event_id in found.gone:
        _LOGGER.warning('%s: deleted by retention, cannot be re-driven', event_id)


def single_spans(sources: Iterable[SourcePosition]) -> list[OffsetSpan]:
    return [
        OffsetSpan(s.topic, s.partition, s.offset, s.offset + 1)
        for s in sorted(sources, key=lambda s: (s.topic, s.partition, s.offset))
    ]


def oldest_source_ms(kafka: KafkaConnection, sources: set[SourcePosition]) -> int:
    """The Kafka timestamp of the oldest of ``sources`` (the first offset of each partition)."""
    firsts: dict[tuple[str, int], SourcePosition] = {}
    for source in sources:
        key = (source.topic, source.partition)
        if key not in firsts or source.offset < firsts[key].offset:
            firsts[key] = source
    return min(r.timestamp_ms for r in read_spans(kafka, single_spans(firsts.values())))


def published_focus_ids(
    kafka: KafkaConnection,
    settings: Settings,
    sources: set[SourcePosition],
    since_ms: int,
    until_ms: int,
) -> collections.Counter:
    """Per focus_event_id of ``sources``, how many prediction results the live topic holds,
    written from ``since_ms`` (the oldest source's time) on."""
    if not sources:
        return collections.Counter()
    found = spans_between(kafka, [settings.prediction_topic], since_ms - CLOCK_MARGIN_MS, until_ms)
    wanted = {s.event_id for s in sources}
    ids = (
        m.get('focus_event_id')
        for m in json_objects(r.value for r in read_spans(kafka, found.spans))
    )
    return collections.Counter(i for i in ids if i in wanted)


def _refuse_replay_flags(options: PipelineOptions) -> None:
    flags = options.view_as(ReplayOptions)
    for name in ('output_dir', 'output_topic', 'to_live_topic'):
        if getattr(flags, name):
            raise ConfigError(
                f'--{name} is a flag of python -m pipeline.replay: a re-drive publishes to the '
                'live topics (COUPON_PREDICTION_TOPIC_NAME, DEAD_LETTER_TOPIC_NAME)'
            )


def redrive(argv: Sequence[str]) -> int:
    options, settings = driver.parse_command_line(argv)
    _refuse_replay_flags(options)
    started_ms = driver.now_ms()
    times = time_range_flags(options, started_ms)
    kafka = kafka_connection(settings)
    found = triage(kafka, settings, times)
    driver.require_scorer(settings)
    _drop_gone(kafka, found)
    since_ms = oldest_source_ms(kafka, found.sources) if found.sources else started_ms
    published = published_focus_ids(kafka, settings, found.sources, since_ms, started_ms)
    again = {s for s in found.sources if s.event_id not in published}
    ok = True
    if again:
        outputs = Outputs(
            prediction_topic=settings.prediction_topic,
            dead_letter_topic=settings.dead_letter_topic,
        )
        ok = driver.run_job(options, settings, JobInput(tuple(single_spans(again))), outputs)
    now_published = published_focus_ids(kafka, settings, again, since_ms, driver.now_ms())
    summary = {
        'dead_letters_in_range': dict(found.letters),
        'retryable_sources': len(found.sources) + len(found.gone),
        'sources_on_other_topics': found.other_topics,
        'deleted_by_retention': found.gone,
        'focus_events_published_before': len(published),
        're_driven': len(again),
        're_driven_focus_events': sum(s.topic == settings.focus_topic for s in again),
        'focus_events_with_coupons_now': len(now_published),
        'prediction_results_published': sum(now_published.values()),
    }
    print(json.dumps(summary, indent=2))
    if not ok:
        print(f'{PROG}: the job failed', file=sys.stderr)
        return driver.EXIT_FAILED
    return 0


def main() -> None:
    sys.exit(driver.main_of(PROG, redrive, sys.argv[1:]))


if __name__ == '__main__':
    main()
