"""python -m bench's --only, --loads and --seconds, and what they make of the plan; no broker."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest

from bench.__main__ import _parser, chosen_plan, keeps_latest, names, positive_seconds, rates
from bench.measure import PointResult
from bench.plan import (
    FULL,
    OPTIONAL_SYSTEMS,
    PIPELINE,
    QUICK,
    SYSTEMS,
    Saturation,
    select,
    sweep_goes_on,
)
from bench.rig import RESULTS_DIR
from bench.systems import FLOOR, SIMPLE
from tests.bench.test_latency_part import TEMPLATE


def parsed(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(argv)


def point(system: str, keeps_up: bool) -> PointResult:
    """A sweep point at 100/s that keeps up or processes nothing."""
    return replace(
        TEMPLATE,
        section='sweep',
        system=system,
        offered_rate=100.0,
        sent_rate=100.0,
        throughput=100.0 if keeps_up else 0.0,
        with_output=100 if keeps_up else 0,
        without_output=0,
    )


# --- parsing -----------------------------------------------------------------------------


def test_names_are_split_on_commas_and_stripped():
    assert names('pipeline, floor,') == ('pipeline', 'floor')


def test_no_name_is_refused():
    with pytest.raises(argparse.ArgumentTypeError):
        names(' , ')


def test_loads_are_positive_focus_events_per_second_in_the_order_given():
    assert rates('10,50,2.5') == (10.0, 50.0, 2.5)


@pytest.mark.parametrize('text', ['', 'ten', '10,0', '10,-5', 'inf', 'nan'])
def test_loads_that_are_not_positive_numbers_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        rates(text)


@pytest.mark.parametrize('text', ['0', '-1', 'x', 'inf'])
def test_a_point_duration_must_be_a_positive_number(text):
    with pytest.raises(argparse.ArgumentTypeError):
        positive_seconds(text)


def test_the_options_reach_the_namespace():
    args = parsed('--only', 'pipeline,floor', '--loads', '10,50', '--seconds', '10')

    assert (args.only, args.loads, args.seconds) == (('pipeline', 'floor'), (10.0, 50.0), 10.0)


# --- plans -------------------------------------------------------------------------------


def test_without_the_options_the_plans_are_the_standard_ones():
    assert chosen_plan(parsed()) is FULL
    assert chosen_plan(parsed('--quick')) is QUICK


def test_loads_make_a_sweep_alone_with_the_plans_timing_measuring_every_load():
    plan = chosen_plan(parsed('--quick', '--loads', '10,300', '--seconds', '7'))

    assert plan.loads == (10.0, 300.0) and plan.duration_s == 7 and plan.timing == QUICK.timing
    assert not plan.stop_at_saturation
    assert plan.replay_visits is None and plan.burst_visits is None
    assert plan.batching_rate is None and not plan.latency_loads
    assert not plan.standin_capacity and not plan.profile


def test_loads_with_flink_keep_the_flink_systems():
    plan = chosen_plan(parsed('--flink', '--loads', '50'))

    assert plan.on_flink and plan.loads == (50.0,)


def test_loads_without_seconds_keep_the_plans_duration():
    assert chosen_plan(parsed('--loads', '10')).duration_s == FULL.duration_s


def test_seconds_alone_change_only_the_duration():
    assert chosen_plan(parsed('--quick', '--seconds', '3')) == replace(QUICK, duration_s=3)


def test_only_a_standard_run_under_the_results_directory_becomes_the_latest():
    out = RESULTS_DIR / 'run'

    assert keeps_latest(FULL, None, out)
    assert not keeps_latest(FULL, None, Path('/tmp/run'))
    assert not keeps_latest(FULL, ('pipeline',), out)
    assert not keeps_latest(chosen_plan(parsed('--loads', '10')), None, out)


# --- systems -----------------------------------------------------------------------------


def test_the_floor_is_chosen_only_by_name_and_in_the_order_named():
    chosen = select((*SYSTEMS, *OPTIONAL_SYSTEMS), ('floor', 'pipeline', 'floor'))

    assert chosen == (FLOOR, PIPELINE)
    assert FLOOR not in SYSTEMS


def test_an_unknown_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match='flor.*choose among pipeline, simple'):
        select(SYSTEMS, ('pipeline', 'flor'))


def test_a_bad_only_stops_the_command_before_anything_starts(capsys):
    from bench.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(['--only', 'pipeline,flor', '--loads', '10'])

    assert stop.value.code == 2 and 'unknown system(s) flor' in capsys.readouterr().err


def test_the_floor_has_no_focus_event_without_output_and_every_one_is_due():
    assert FLOOR.without_output(None) == 0 and not FLOOR.scores
    assert FLOOR.module == 'bench.floor' and PIPELINE.module == 'pipeline'


# --- the sweep's stop rule ---------------------------------------------------------------


def test_the_sweep_stops_after_the_load_the_pipeline_misses_whatever_the_others_do():
    assert not sweep_goes_on([point(PIPELINE.name, False), point(SIMPLE.name, True)])
    assert sweep_goes_on([point(PIPELINE.name, True), point(SIMPLE.name, False)])


def test_without_the_pipeline_the_sweep_stops_once_no_system_keeps_up():
    assert sweep_goes_on([point(FLOOR.name, False), point(SIMPLE.name, True)])
    assert not sweep_goes_on([point(FLOOR.name, False), point(SIMPLE.name, False)])


def test_a_saturation_without_points_says_the_system_was_not_measured():
    assert Saturation.of([], PIPELINE.name).describe() == (
        'The pipeline was not measured at a paced load.'
    )
