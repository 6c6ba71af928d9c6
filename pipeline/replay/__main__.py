"""python -m pipeline.replay: a what-if. Scores a past time range of the entry and focus
topics again, with the settings given (another COUPON_SCORER_URL, threshold or TOP_K), and
compares the result with what the live service published.

  python -m pipeline.replay --runner=DirectRunner \\
      --replay_from=2026-12-05T10:00:00Z --replay_to=2026-12-05T14:00:00Z \\
      --prediction_threshold=0.3 --output_dir=whatif-saturday

Writes, into the new ``--output_dir``: ``predictions.jsonl`` (prediction results, the live
format), ``dead_letters.jsonl``, ``focus_events.jsonl``, ``live_predictions.jsonl`` (the live topic's, written up to an hour
after the range),
``summary.json``, ``report.md`` and ``report.png`` (pipeline.replay.report); with
``--output_topic`` the predictions go to that topic too (never to the live one unless
``--to_live_topic``). The customer context comes from the central as it answers now, not as
it answered then: the summary and the report say so. Exit codes: 0 done, 1 the job failed,
2 a bad flag or setting (nothing written), 3 nothing to replay (an empty range, or one that
retention deleted), 4 the scorer is down.
"""

from __future__ import annotations

import collections
import datetime
import json
import sys
from pathlib import Path
from typing import Sequence

from pipeline.options import Settings
from pipeline.replay import report
from pipeline.replay.driver import (
    EXIT_FAILED,
    NothingToDo,
    main_of,
    now_ms,
    parse_command_line,
    require_scorer,
    run_job,
)
from pipeline.replay.job import DEAD_LETTERS, PREDICTIONS, JobInput, Outputs
from pipeline.replay.options import ReplayFlags, replay_flags
from pipeline.wiring import kafka_connection
from transforms.kafka import SpansBetween, TimeRange, spans_between

PROG = 'python -m pipeline.replay'
# The live results of the range's focus events are looked for up to this long after its end.
LIVE_MARGIN_MS = 3600 * 1000


def iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat()


def _input_spans(settings: Settings, flags: ReplayFlags) -> SpansBetween:
    """The input topics' offsets of the range; NothingToDo if it holds no record."""
    times = flags.times
    found = spans_between(
        kafka_connection(settings),
        [settings.entry_topic, settings.focus_topic],
        times.from_ms,
        times.to_ms,
    )
    if found.spans:
        return found
    where = f'{settings.entry_topic}, {settings.focus_topic}'
    if found.kept_from_ms and max(found.kept_from_ms.values()) >= times.to_ms:
        kept = iso(min(found.kept_from_ms.values()))
        raise NothingToDo(
            f'{times.from_text} to {times.to_text} is outside the retention of {where}: '
            f'they keep records from {kept} on'
        )
    raise NothingToDo(f'no record in {where} between {times.from_text} and {times.to_text}')


def _header(
    settings: Settings, flags: ReplayFlags, found: SpansBetween, context_ms: int, live_ms: int
) -> list:
    lines = [
        f'- Range: {flags.times.from_text} to {flags.times.to_text} (Kafka record timestamps) '
        f'of `{settings.entry_topic}` and `{settings.focus_topic}`: {found.records} offsets.',
        f'- Replay settings: scorer `{settings.scorer_url}`, threshold '
        f'{settings.prediction_threshold}, top {settings.top_k}.',
        f'- Live results: `{settings.prediction_topic}`, written from the range\'s start to '
        f'{iso(live_ms)}.',
        f'- Customer context: from the central (`{settings.central_url}`) as it answered at '
        f'{iso(context_ms)}, not as it answered at the time of the events.',
    ]
    for partition, kept_ms in sorted(found.kept_from_ms.items()):
        lines.append(
            f'- **Retention**: `{partition}` keeps records from {iso(kept_ms)} on: '
            'the range\'s earlier records there are gone.'
        )
    return lines


def _summary(directory: Path, header: list[str], rows: list[report.Row]) -> dict:
    letters = collections.Counter(
        m.get('reason') for m in report.read_jsonl(directory / f'{DEAD_LETTERS}.jsonl')
    )
    overall = rows[-1]
    return {
        'about': header,
        'focus_events': overall.focus_events,
        'focus_events_with_coupons': {
            'live': overall.with_coupons_live,
            'replay': overall.with_coupons_replay,
        },
        'prediction_results': sum(1 for _ in report.read_jsonl(directory / f'{PREDICTIONS}.jsonl')),
        'dead_letters': dict(letters),
    }


def replay(argv: Sequence[str]) -> int:
    options, settings = parse_command_line(argv)
    started_ms = now_ms()
    flags = replay_flags(options, settings, started_ms)
    found = _input_spans(settings, flags)
    require_scorer(settings)
    live_until_ms = min(started_ms, flags.times.to_ms + LIVE_MARGIN_MS)
    live = spans_between(
        kafka_connection(settings), [settings.prediction_topic], flags.times.from_ms, live_until_ms
    )
    directory = flags.output_dir
    directory.mkdir(parents=True, exist_ok=True)
    job = JobInput(found.spans, TimeRange(flags.times.from_ms, flags.times.to_ms), live.spans)
    if not run_job(options, settings, job, Outputs(str(directory), flags.output_topic)):
        print(f'{PROG}: the job failed; what it wrote is in {directory}', file=sys.stderr)
        return EXIT_FAILED
    header = _header(settings, flags, found, started_ms, live_until_ms)
    rows = report.comparison(report.outcomes(directory))
    (directory / 'report.md').write_text(report.markdown(rows, header))
    report.plot(rows, directory / 'report.png')
    summary = _summary(directory, header, rows)
    (directory / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    print(json.dumps(summary, indent=2))
    return 0


def main() -> None:
    sys.exit(main_of(PROG, replay, sys.argv[1:]))


if __name__ == '__main__':
    main()
