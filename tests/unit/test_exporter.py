"""PipelineStatus: health says whether the job runs and the read moves; the histogram."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry

from pipeline.exporter import PipelineStatus
from pipeline.metrics import LATENCY, READ_DELAY, MetricsSnapshot
from transforms.kafka.drain import RunProgress


class FakeResult:
    def __init__(self, state: str):
        self.state = state


def status(state: str, polled: bool, python_read: bool = True) -> PipelineStatus:
    run = RunProgress()
    if polled:
        run.read(('store.focus', 0), 0, 1)
    view = PipelineStatus(run, python_read)
    view.result = FakeResult(state)
    return view


def test_healthy_when_running_and_the_read_polls():
    healthy, body = status('RUNNING', polled=True).health()

    assert healthy and body['status'] == 'ok' and body['seconds_since_read'] < 1


def test_unhealthy_before_the_first_poll_or_when_the_job_is_not_running():
    assert not status('RUNNING', polled=False).health()[0]
    assert not status('FAILED', polled=True).health()[0]
    assert not PipelineStatus(RunProgress(), True).health()[0]  # not submitted yet


def test_the_xlang_read_is_judged_by_the_job_state_alone():
    assert status('RUNNING', polled=False, python_read=False).health()[0]


def scrape(snapshot: MetricsSnapshot) -> str:
    """/metrics of a running pipeline whose latest metrics are ``snapshot``."""
    view = status('RUNNING', polled=True)
    view.snapshot = snapshot
    registry = CollectorRegistry()
    registry.register(view)
    return generate_latest(registry).decode()


def test_the_latency_histogram_is_cumulative_in_seconds():
    text = scrape(
        MetricsSnapshot(
            counters={
                f'{LATENCY}_le_5': 2,
                f'{LATENCY}_le_100': 3,
                f'{LATENCY}_le_inf': 1,
                'predictions.written': 6,
            },
            distributions={LATENCY: (6, 120_000)},
        )
    )

    assert 'coupon_scoring_focus_to_prediction_seconds_bucket{le="0.005"} 2.0' in text
    assert 'coupon_scoring_focus_to_prediction_seconds_bucket{le="0.1"} 5.0' in text
    assert 'coupon_scoring_focus_to_prediction_seconds_bucket{le="+Inf"} 6.0' in text
    assert 'coupon_scoring_focus_to_prediction_seconds_sum 120.0' in text
    assert 'coupon_scoring_predictions_written_total 6.0' in text


def test_the_read_delay_is_a_histogram_of_its_own():
    snapshot = MetricsSnapshot(
        counters={f'{READ_DELAY}_le_50': 4, f'{LATENCY}_le_100': 4},
        distributions={READ_DELAY: (4, 100), LATENCY: (4, 300)},
    )
    text = scrape(snapshot)

    assert 'coupon_scoring_focus_read_delay_seconds_bucket{le="0.02"} 0.0' in text
    assert 'coupon_scoring_focus_read_delay_seconds_bucket{le="0.05"} 4.0' in text
    assert 'coupon_scoring_focus_read_delay_seconds_sum 0.1' in text
    assert 'coupon_scoring_focus_to_prediction_seconds_bucket{le="0.05"} 0.0' in text
    assert snapshot.summary()['focus_read_delay_p50_ms'] == 50
    assert snapshot.summary()['focus_read_delay_mean_ms'] == 25.0
