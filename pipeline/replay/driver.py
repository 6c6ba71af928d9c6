"""What the replay and the re-drive share around their bounded job: reading the command line
(exit 2 on any bad flag or setting), refusing a scorer that is down (exit 4), running the job
on the chosen runner until it ends, and the exit codes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from kafka.errors import KafkaError

from pipeline.flink import JOB_SERVER_FLAGS, FlinkConfigError, with_flink_defaults
from pipeline.flink.runner import JobServerJarUnavailable
from pipeline.options import ConfigError, CouponScoringOptions, Settings
from pipeline.replay.job import JobInput, Outputs, build_job
from pipeline.replay.options import ReplayOptions, checked_settings
from pipeline.runner import on_flink, route_runner, runner_instance
from pipeline.wiring import scorer_config
from transforms.scoring import scorer_problem

_LOGGER = logging.getLogger('pipeline.replay')

EXIT_FAILED = 1
EXIT_BAD_FLAGS = 2
EXIT_NOTHING_TO_DO = 3
EXIT_SCORER_DOWN = 4


class NothingToDo(Exception):
    """The range holds nothing for the job (empty, or deleted by retention)."""


class Refused(Exception):
    """The job cannot start; ``code`` is the exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_command_line(argv: Sequence[str]) -> tuple[PipelineOptions, Settings]:
    """The options and the service's settings; ConfigError names what is wrong."""
    try:
        options = PipelineOptions(with_flink_defaults(list(argv)))
    except FlinkConfigError as error:
        raise ConfigError(str(error)) from None
    passed_on = JOB_SERVER_FLAGS if on_flink(options) else frozenset()
    return options, checked_settings(options, passed_on)


def require_scorer(settings: Settings) -> None:
    problem = scorer_problem(scorer_config(settings))
    if problem:
        raise Refused(f'the scorer is down: {problem} (COUPON_SCORER_URL)', EXIT_SCORER_DOWN)


def run_job(options: PipelineOptions, settings: Settings, job: JobInput, outputs: Outputs) -> bool:
    """Runs the bounded job until it ends; whether it succeeded."""
    options = route_runner(options, streaming=False)
    p = beam.Pipeline(runner=runner_instance(options), options=options)
    build_job(p, settings, job, outputs)
    started = time.monotonic()
    result = p.run()
    state = result.wait_until_finish()
    _LOGGER.info('job %s after %.1f s', state, time.monotonic() - started)
    return state == PipelineState.DONE


def print_help(prog: str, description: str) -> None:
    """The job's flags and the service's settings (Beam's own flags are accepted too)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    ReplayOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    CouponScoringOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    parser.print_help()


def main_of(prog: str, run: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    """``run(argv)``, with each refusal as its message and exit code."""
    if '-h' in argv or '--help' in argv:
        print_help(prog, (sys.modules['__main__'].__doc__ or '').split('\n\n')[0])
        return 0
    logging.basicConfig(
        level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s'
    )
    for chatty in ('kafka', 'apache_beam'):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return run(argv)
    except ConfigError as error:
        print(f'{prog}: configuration error: {error}', file=sys.stderr)
        return EXIT_BAD_FLAGS
    except (ValueError, KafkaError) as error:  # a missing topic, an unreachable broker
        print(f'{prog}: cannot start: {error!r}', file=sys.stderr)
        return EXIT_BAD_FLAGS
    except JobServerJarUnavailable as error:
        print(f'{prog}: cannot start: {error}', file=sys.stderr)
        return EXIT_BAD_FLAGS
    except NothingToDo as error:
        print(f'{prog}: nothing to do: {error}', file=sys.stderr)
        return EXIT_NOTHING_TO_DO
    except Refused as error:
        print(f'{prog}: {error}', file=sys.stderr)
        return error.code
