"""The comparison report of a replay: what the screens showed (the live prediction topic)
against what the replay would have shown, for the focus events of the range.

From the job's files (pipeline.replay.job): ``focus_events.jsonl`` (every valid focus event
replayed), ``predictions.jsonl`` (the replay's prediction results) and
``live_predictions.jsonl`` (the live topic's messages since the range's start; those of other
focus events are ignored, duplicates of at-least-once delivery counted once). Per department
and overall: focus events, how many got coupons live and in the replay, how many got the same
coupons, the mean overlap (Jaccard) of the coupons shown, and the shown predictions'
distributions (mean, median, and the Kolmogorov-Smirnov distance between them). Written as
Markdown and a PNG plot.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

Coupons = dict[int, float]  # coupon_id -> prediction


@dataclasses.dataclass
class FocusOutcome:
    department_id: int
    live: Coupons = dataclasses.field(default_factory=dict)
    replay: Coupons = dataclasses.field(default_factory=dict)

    @property
    def overlap(self) -> Optional[float]:
        """Jaccard overlap of the coupon sets; None when neither showed any."""
        union = self.live.keys() | self.replay.keys()
        return len(self.live.keys() & self.replay.keys()) / len(union) if union else None


@dataclasses.dataclass(frozen=True)
class Row:
    """The comparison for one department, or all of them (``department`` None)."""

    department: Optional[int]
    focus_events: int
    with_coupons_live: int
    with_coupons_replay: int
    same_coupons: int
    mean_overlap: Optional[float]
    live_predictions: tuple[float, ...]
    replay_predictions: tuple[float, ...]

    @property
    def distance(self) -> Optional[float]:
        return ks_distance(self.live_predictions, self.replay_predictions)


def json_objects(texts: Iterable[Union[str, bytes, None]]) -> Iterator[dict]:
    """The texts that are JSON objects; the others are skipped, as a topic may carry anything."""
    for text in texts:
        try:
            message = json.loads(text or b'')
        except ValueError:
            continue
        if isinstance(message, dict):
            yield message


def read_jsonl(path: Path) -> Iterator[dict]:
    """The JSON objects of a file of lines (a missing file: none)."""
    if path.exists():
        yield from json_objects(path.read_text(encoding='utf-8').splitlines())


def _prediction(message: dict) -> Optional[tuple[str, int, float]]:
    try:
        payload = message['payload']
        return message['focus_event_id'], int(payload['coupon_id']), float(payload['prediction'])
    except (KeyError, TypeError, ValueError):
        return None


def outcomes(directory: Path) -> dict[str, FocusOutcome]:
    """Each replayed focus event with the coupons shown live and in the replay."""
    focuses = {
        m['focus_event_id']: FocusOutcome(int(m['department_id']))
        for m in read_jsonl(directory / 'focus_events.jsonl')
    }
    for name, side in (('live_predictions', 'live'), ('predictions', 'replay')):
        for message in read_jsonl(directory / f'{name}.jsonl'):
            found = _prediction(message)
            if found and found[0] in focuses:
                getattr(focuses[found[0]], side)[found[1]] = found[2]
    return focuses


def _row(department: Optional[int], focuses: list[FocusOutcome]) -> Row:
    overlaps = [f.overlap for f in focuses if f.overlap is not None]
    return Row(
        department=department,
        focus_events=len(focuses),
        with_coupons_live=sum(bool(f.live) for f in focuses),
        with_coupons_replay=sum(bool(f.replay) for f in focuses),
        same_coupons=sum(f.live.keys() == f.replay.keys() for f in focuses),
        mean_overlap=statistics.fmean(overlaps) if overlaps else None,
        live_predictions=tuple(p for f in focuses for p in f.live.values()),
        replay_predictions=tuple(p for f in focuses for p in f.replay.values()),
    )


def comparison(found: dict[str, FocusOutcome]) -> list[Row]:
    """One row per department, by id, then the overall one."""
    by_department: dict[int, list[FocusOutcome]] = defaultdict(list)
    for outcome in found.values():
        by_department[outcome.department_id].append(outcome)
    rows = [_row(d, by_department[d]) for d in sorted(by_department)]
    return rows + [_row(None, list(found.values()))]


def ks_distance(first: Iterable[float], second: Iterable[float]) -> Optional[float]:
    """The largest gap between the two samples' empirical distribution functions."""
    a, b = sorted(first), sorted(second)
    if not a or not b:
        return None
    return max(
        abs(bisect.bisect_right(a, x) / len(a) - bisect.bisect_right(b, x) / len(b)) for x in a + b
    )


def _number(value: Optional[float], digits: int = 3) -> str:
    return '–' if value is None else f'{value:.{digits}f}'


def _median(values: tuple[float, ...]) -> Optional[float]:
    return statistics.median(values) if values else None


def _mean(values: tuple[float, ...]) -> Optional[float]:
    return statistics.fmean(values) if values else None


def markdown(rows: list[Row], header: list[str]) -> str:
    """The report: ``header`` lines (what was replayed, with which settings), then the table."""
    lines = ['# What-if replay: live against replay', '', *header, '']
    lines += [
        '| department | focus events | with coupons live | with coupons replay | same coupons '
        '| mean overlap | predictions shown live / replay | mean live / replay '
        '| median live / replay | KS distance |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        name = 'all' if row.department is None else str(row.department)
        lines.append(
            f'| {name} | {row.focus_events} | {row.with_coupons_live} '
            f'| {row.with_coupons_replay} | {row.same_coupons} | {_number(row.mean_overlap)} '
            f'| {len(row.live_predictions)} / {len(row.replay_predictions)} '
            f'| {_number(_mean(row.live_predictions))} / {_number(_mean(row.replay_predictions))} '
            f'| {_number(_median(row.live_predictions))} / '
            f'{_number(_median(row.replay_predictions))} | {_number(row.distance)} |'
        )
    lines += [
        '',
        '"Same coupons": the focus event showed the same set of coupons (none on both sides '
        'counts). "Mean overlap": |live ∩ replay| / |live ∪ replay| of the coupon sets, over '
        'the focus events with coupons on either side. "KS distance": the largest gap between '
        'the distributions of the predictions shown (0: the same; 1: disjoint).',
        '',
    ]
    return '\n'.join(lines)


def plot(rows: list[Row], path: Path) -> None:
    """Two panels: the predictions shown (live and replay), and the share of focus events
    with coupons per department."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot

    overall, departments = rows[-1], rows[:-1]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    bins = [i / 20 for i in range(21)]
    left.hist(overall.live_predictions, bins=bins, alpha=0.6, label='live')
    left.hist(overall.replay_predictions, bins=bins, alpha=0.6, label='replay')
    left.set_xlabel('prediction of a coupon shown')
    left.set_ylabel('coupons shown')
    left.legend()
    names = [str(row.department) for row in departments]
    positions = range(len(departments))
    share = [
        (r.with_coupons_live / r.focus_events, r.with_coupons_replay / r.focus_events)
        for r in departments
    ]
    right.bar([x - 0.2 for x in positions], [s[0] for s in share], width=0.4, label='live')
    right.bar([x + 0.2 for x in positions], [s[1] for s in share], width=0.4, label='replay')
    right.set_xticks(list(positions), names)
    right.set_xlabel('department')
    right.set_ylabel('share of focus events with coupons')
    right.set_ylim(0, 1.15)
    right.legend(loc='upper center', ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
