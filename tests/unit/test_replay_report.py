"""The replay's comparison (pipeline/replay/report.py) on small files written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.replay import report


def prediction(focus_id: str, coupon: int, p: float) -> str:
    return json.dumps(
        {
            'focus_event_id': focus_id,
            'payload': {'customer_id': 1, 'coupon_id': coupon, 'prediction': p},
        }
    )


def write(directory: Path, name: str, lines: list[str]) -> None:
    (directory / f'{name}.jsonl').write_text('\n'.join(lines) + '\n')


@pytest.fixture
def replayed(tmp_path: Path) -> Path:
    focuses = [
        {'focus_event_id': 'f/0/1', 'customer_id': 1, 'department_id': 1, 'event_timestamp': 't'},
        {'focus_event_id': 'f/0/2', 'customer_id': 2, 'department_id': 1, 'event_timestamp': 't'},
        {'focus_event_id': 'f/0/3', 'customer_id': 3, 'department_id': 2, 'event_timestamp': 't'},
    ]
    write(tmp_path, 'focus_events', [json.dumps(f) for f in focuses])
    write(
        tmp_path,
        'live_predictions',
        [
            prediction('f/0/1', 10, 0.9),
            prediction('f/0/1', 11, 0.5),
            prediction('f/0/1', 11, 0.5),  # a duplicate of at-least-once delivery
            prediction('f/0/3', 30, 0.3),
            prediction('other/0/9', 10, 0.9),  # a focus event outside the range
            'not json',
            '[1, 2]',
        ],
    )
    write(tmp_path, 'predictions', [prediction('f/0/1', 10, 0.9), prediction('f/0/2', 20, 0.7)])
    return tmp_path


def test_each_department_and_the_whole_range_are_compared(replayed: Path):
    rows = report.comparison(report.outcomes(replayed))
    first, second, overall = rows
    assert (first.department, first.focus_events) == (1, 2)
    assert (first.with_coupons_live, first.with_coupons_replay) == (1, 2)
    assert first.same_coupons == 0
    assert first.mean_overlap == pytest.approx((1 / 2 + 0) / 2)
    assert sorted(first.live_predictions) == [0.5, 0.9]
    assert (second.with_coupons_live, second.with_coupons_replay, second.same_coupons) == (1, 0, 0)
    assert overall.department is None and overall.focus_events == 3
    assert overall.mean_overlap == pytest.approx((0.5 + 0 + 0) / 3)


def test_the_same_coupons_on_both_sides_compare_as_identical(tmp_path: Path):
    focus = {'focus_event_id': 'f/0/1', 'customer_id': 1, 'department_id': 4}
    write(
        tmp_path,
        'focus_events',
        [json.dumps(focus), json.dumps({**focus, 'focus_event_id': 'f/0/2'})],
    )
    same = [prediction('f/0/1', 10, 0.9), prediction('f/0/1', 12, 0.4)]
    write(tmp_path, 'live_predictions', same)
    write(tmp_path, 'predictions', same)
    overall = report.comparison(report.outcomes(tmp_path))[-1]
    assert overall.same_coupons == 2  # f/0/2: none on either side is the same too
    assert overall.mean_overlap == 1.0
    assert overall.distance == 0.0


@pytest.mark.parametrize(
    'first, second, distance',
    [
        ([0.1, 0.2], [0.1, 0.2], 0.0),
        ([0.1, 0.2], [0.8, 0.9], 1.0),
        ([0.1, 0.2, 0.3, 0.4], [0.3, 0.4], 0.5),
        ([], [0.5], None),
    ],
)
def test_ks_distance(first, second, distance):
    assert report.ks_distance(first, second) == distance


def test_the_markdown_has_a_row_per_department_and_the_header(replayed: Path):
    rows = report.comparison(report.outcomes(replayed))
    text = report.markdown(rows, ['- Customer context: now'])
    assert '- Customer context: now' in text
    rows_shown = [line.split('|')[1].strip() for line in text.splitlines() if line.startswith('| ')]
    assert rows_shown == ['department', '1', '2', 'all']


def test_the_plot_is_a_png(replayed: Path, tmp_path: Path):
    path = tmp_path / 'report.png'
    report.plot(report.comparison(report.outcomes(replayed)), path)
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
