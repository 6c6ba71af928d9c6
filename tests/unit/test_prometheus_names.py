"""The /metrics scrape as Prometheus' own tools judge it: names and labels by Prometheus'
naming rules and by the lint rules of ``promtool check metrics``, on a scrape of the exporter
with the pipeline's real Beam counter names (camelCase ones included); promtool itself too,
where it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from kafka import TopicPartition
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from pipeline.exporter import PipelineStatus, counter_name
from pipeline.metrics import LATENCY, READ_DELAY, MetricsSnapshot
from transforms.kafka.drain import RunProgress
from transforms.latency import BOUNDS_MS

# Counters of transforms/*, and Beam's own of RunInference and its throttler ('namespace.name').
BEAM_COUNTERS = (
    'events.read_store.entry',
    'events.read_store.focus',
    'events.polls',
    'dead_letters.not_json',
    'dead_letters.poison_pill',
    'dead_letters.scoring_failed',
    'offsets.commits',
    'offsets.skipped_ended_before_restart',
    'contexts.fetched_on_entry',
    'contexts.fetch_failed_on_demand',
    'sessions.focus_enriched_from_state',
    'scorer.requests',
    'scorer.failed_requests_http_5xx',
    'scorer.cumulativeThrottlingSeconds',
    'selection.focus_with_coupons',
    'predictions.written',
    'RunInference.num_inferences',
    'RunInference.failed_batches_counter',
)

# Prometheus' metric name rule ([a-zA-Z_:][a-zA-Z0-9_:]*) in snake_case, without the colons
# that are the recording rules' (promtool: "should not contain ':'").
METRIC_NAME = re.compile(r'[a-z_][a-z0-9_]*')
# Label names: [a-zA-Z_][a-zA-Z0-9_]*, snake_case, not the '__' prefix Prometheus reserves.
LABEL_NAME = re.compile(r'(?!__)[a-z_][a-z0-9_]*')
TYPE_LINE = re.compile(r'^# TYPE (\S+) (\S+)$', re.MULTILINE)
TYPE_WORDS = ('counter', 'gauge', 'histogram', 'summary')
UNIT_ABBREVIATIONS = frozenset('s ms us ns sec b kb mb gb tb pb m h d'.split())
# promtool: "use base unit ... instead of ...", for a prefixed unit or a non-base one.
NOT_BASE_UNIT = re.compile(
    r'(pico|nano|micro|milli|centi|deci|deca|hecto|kilo|kibi|mega|mibi|giga|gibi|tera|tebi|peta'
    r'|pebi)(amperes|bytes|grams|joules|meters|metres|seconds|volts)'
    r'|minutes|hours|days|weeks|bits|kelvins|fahrenheit|rankine|inches|yards|miles|calories'
    r'|pounds|ounces'
)


def scrape(counters: dict[str, int]) -> str:
    """The exporter's /metrics text with these Beam counters, the latency histograms and the
    lag of two partitions."""
    status = PipelineStatus(RunProgress(), python_read=True)
    histograms = (LATENCY, READ_DELAY)
    buckets = {f'{h}_le_{bound}': 1 for h in histograms for bound in (*BOUNDS_MS, 'inf')}
    sums = {h: (len(BOUNDS_MS) + 1, 900) for h in histograms}
    status.snapshot = MetricsSnapshot({**counters, **buckets}, sums)
    status.lag = {TopicPartition('store.focus', 0): 3, TopicPartition('store.entry', 0): 0}
    registry = CollectorRegistry()
    registry.register(status)
    return generate_latest(registry).decode()


def lint(text: str) -> list[str]:
    """What Prometheus' naming rules and promtool's lint rules say of a scrape: of each
    family's name and type as its TYPE line declares them (prometheus-client's parser adds a
    missing ``_total`` to a counter's samples), then of its help, samples and labels."""
    declared = TYPE_LINE.findall(text)
    families = list(text_string_to_metric_families(text))
    found = [problem for name, kind in declared for problem in name_problems(name, kind)]
    found += [problem for family in families for problem in family_problems(family)]
    return found + ([] if len(declared) == len(families) else ['a family without a TYPE line'])


def name_problems(name: str, kind: str) -> list[str]:
    """A family's name, by the rules of names, types, suffixes and units."""
    words = name.split('_')
    found = [] if METRIC_NAME.fullmatch(name) else [f'not a snake_case name: {name}']
    found += [f'type {word!r} in the name: {name}' for word in TYPE_WORDS if word in words[1:]]
    found += [f'abbreviated unit: {name}'] if UNIT_ABBREVIATIONS & set(words) else []
    found += [f'not a base unit: {name}'] if any(map(NOT_BASE_UNIT.fullmatch, words)) else []
    if (kind == 'counter') != name.endswith('_total'):
        found.append(f'a counter, and only a counter, ends in _total: {name}')
    if kind != 'histogram' and name.endswith(('_bucket', '_count', '_sum')):
        found.append(f"a histogram's suffix on a {kind}: {name}")
    return found


def family_problems(family: Metric) -> list[str]:
    """A family's help, and its samples' names and label names."""
    found = [] if family.documentation else [f'no help text: {family.name}']
    for sample in family.samples:
        found += [
            f'label {label} of {sample.name}'
            for label in sample.labels
            if not LABEL_NAME.fullmatch(label)
        ]
        if not METRIC_NAME.fullmatch(sample.name) or not sample.name.startswith(family.name):
            found.append(f'sample {sample.name} of {family.name}')
        if (family.type != 'histogram' and 'le' in sample.labels) or 'quantile' in sample.labels:
            found.append(f"a histogram's or summary's label on {sample.name}")
    return found


def test_every_name_of_the_scrape_passes_prometheus_and_promtool_rules() -> None:
    text = scrape(dict.fromkeys(BEAM_COUNTERS, 7))

    names = [name for name, _ in TYPE_LINE.findall(text)]
    assert lint(text) == []
    assert len(names) == len(set(names)) == len(BEAM_COUNTERS) + 5  # 2 histograms, 3 gauges
    assert 'coupon_scoring_scorer_cumulative_throttling_seconds_total' in names
    assert 'coupon_scoring_focus_to_prediction_seconds' in names
    assert 'coupon_scoring_focus_read_delay_seconds' in names


def test_the_rules_catch_what_promtool_catches() -> None:
    old = (
        '# HELP coupon_scoring_RunInference_failed_batches_counter_total x\n'
        '# TYPE coupon_scoring_RunInference_failed_batches_counter_total counter\n'
        'coupon_scoring_RunInference_failed_batches_counter_total 1.0\n'
        '# HELP coupon_scoring_polls x\n'
        '# TYPE coupon_scoring_polls counter\n'
        'coupon_scoring_polls 1.0\n'
        '# HELP coupon_scoring_lag_ms_count x\n'
        '# TYPE coupon_scoring_lag_ms_count gauge\n'
        'coupon_scoring_lag_ms_count{topicName="a"} 1.0\n'
    )

    assert [problem.split(':')[0] for problem in lint(old)] == [
        'not a snake_case name',
        "type 'counter' in the name",
        'a counter, and only a counter, ends in _total',
        'abbreviated unit',
        "a histogram's suffix on a gauge",
        'sample coupon_scoring_RunInference_failed_batches_counter_total of '
        'coupon_scoring_RunInference_failed_batches_counter',
        'label topicName of coupon_scoring_lag_ms_count',
    ]


@pytest.mark.parametrize(
    ('beam_name', 'prometheus_name'),
    [
        ('RunInference.num_inferences', 'coupon_scoring_run_inference_num_inferences'),
        ('RunInference.failed_batches_counter', 'coupon_scoring_run_inference_failed_batches'),
        (
            'scorer.cumulativeThrottlingSeconds',
            'coupon_scoring_scorer_cumulative_throttling_seconds',
        ),
        ('events.read_store.focus', 'coupon_scoring_events_read_store_focus'),
        ('scorer.failed_requests_http_5xx', 'coupon_scoring_scorer_failed_requests_http_5xx'),
        ('BatchElements.HTTPError__x', 'coupon_scoring_batch_elements_http_error_x'),
    ],
)
def test_beam_counter_names_become_snake_case(beam_name: str, prometheus_name: str) -> None:
    assert counter_name(beam_name) == prometheus_name


def test_beam_names_that_become_one_prometheus_name_are_summed() -> None:
    text = scrape({'events.read_store.focus': 2, 'events.read_store_focus': 3})

    assert 'coupon_scoring_events_read_store_focus_total 5.0' in text
    assert text.count('# TYPE coupon_scoring_events_read_store_focus_total counter') == 1


def test_promtool_check_metrics_accepts_the_scrape() -> None:
    assert shutil.which('promtool'), 'promtool is missing: ./run_tests.sh installs it'
    checked = subprocess.run(
        ['promtool', 'check', 'metrics'],
        input=scrape(dict.fromkeys(BEAM_COUNTERS, 7)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert (checked.returncode, checked.stdout + checked.stderr) == (0, '')
