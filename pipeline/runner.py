"""Which runner executes the pipeline, and the Prism binary it needs.

``--runner=DirectRunner`` (the default) is routed to Beam's PrismRunner,
explicitly and with a log line: Beam's DirectRunner would pick Prism only for
pipelines its eligibility check accepts (it rejects RunInference's
``with_exception_handling``), and its fallbacks cannot stream: the FnApiRunner
is batch-only and the legacy BundleBasedDirectRunner cannot run an unbounded
splittable DoFn such as the Kafka read.

Prism's release binaries come from GitHub, which these machines cannot reach,
so the binary is built from the Beam Go module at the SDK's own version, with a
fix for a busy loop (``pipeline.prism``), once, into
``~/.apache_beam/cache/prism/v<version>-fixes-<digest>/``. ``PRISM_LOCATION`` or
``--prism_location`` point at another binary.

``--runner=FlinkRunner`` gets Beam's FlinkRunner as an object of ours
(``pipeline.flink.runner``), whose job server applies the Flink settings Beam's
options do not reach.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Optional

from apache_beam.options.pipeline_options import (
    PipelineOptions,
    PortableOptions,
    PrismRunnerOptions,
    StandardOptions,
)
from apache_beam.runners.runner import PipelineRunner
from apache_beam.version import __version__ as beam_version

from pipeline import prism
from pipeline.flink import buffer_timeout_ms
from pipeline.flink.runner import ConfiguredFlinkRunner, job_configuration

_LOGGER = logging.getLogger(__name__)
_DIRECT_RUNNERS = (None, 'DirectRunner', 'SwitchingDirectRunner')


def prism_binary() -> Path:
    """A Prism binary of this SDK's version with the project's fixes (pipeline.prism), built
    once if absent."""
    override = os.environ.get('PRISM_LOCATION')
    if override:
        return Path(override)
    binary = (
        Path.home() / '.apache_beam' / 'cache' / 'prism' / prism.build_name(beam_version) / 'prism'
    )
    if binary.exists():
        return binary
    if shutil.which('go') is None:
        raise RuntimeError(
            'Prism is needed for --runner=DirectRunner and Go is not installed: '
            'install Go, or set PRISM_LOCATION to a Prism binary'
        )
    _LOGGER.info('Building Prism %s with its fixes into %s (once)', beam_version, binary.parent)
    prism.build_prism(beam_version, binary)
    return binary


def route_runner(options: PipelineOptions, streaming: bool = True) -> PipelineOptions:
    """Sets streaming (the live service) or not (a bounded job on the past), and sends the
    DirectRunner to Prism with a local binary."""
    options.view_as(StandardOptions).streaming = streaming
    standard = options.view_as(StandardOptions)
    if standard.runner in _DIRECT_RUNNERS:
        _LOGGER.info(
            '--runner=%s: running on PrismRunner, Beam\'s portable local runner '
            '(the legacy DirectRunner cannot stream an unbounded Kafka read)',
            standard.runner or 'DirectRunner',
        )
        standard.runner = 'PrismRunner'
    if standard.runner == 'PrismRunner':
        prism = options.view_as(PrismRunnerOptions)
        prism.prism_location = prism.prism_location or str(prism_binary())
    return options


def runner_instance(options: PipelineOptions) -> Optional[PipelineRunner]:
    """The runner object for ``--runner=FlinkRunner`` (Beam's, with this service's Flink
    configuration: pipeline.flink.runner); None for the others, which Beam makes by name."""
    if not on_flink(options):
        return None
    return ConfiguredFlinkRunner(job_configuration(buffer_timeout_ms()))


def on_flink(options: PipelineOptions) -> bool:
    return options.view_as(StandardOptions).runner == 'FlinkRunner'


def one_worker_process(options: PipelineOptions) -> bool:
    """Whether every Python DoFn runs in the submitting process: the LOOPBACK environment,
    Prism's default. Flink's PROCESS environment starts a worker process per TaskManager
    (``--sdk_worker_parallelism`` of them)."""
    environment = options.view_as(PortableOptions).environment_type
    if environment:
        return environment.upper() == 'LOOPBACK'
    return options.view_as(StandardOptions).runner in ('PrismRunner', *_DIRECT_RUNNERS)
