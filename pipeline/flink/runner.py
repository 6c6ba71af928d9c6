"""Beam's FlinkRunner, with a Flink configuration of this service's given to its job server.

Some Flink settings that shape a job are read by the client that builds its job graph (here
Beam's job server) from a Flink configuration, and Beam's pipeline options do not reach them.
The one this service needs is the network buffer timeout: Flink sends a record to the next
task when its output buffer is full or after ``execution.buffer-timeout.interval`` (100 ms by
default). At a store's rates buffers do not fill, so every exchange between the pipeline's
stages (the shuffle to the customer's state, to the scorer, to the writer) would hold a focus
event up to 100 ms. ``FLINK_BUFFER_TIMEOUT_MS`` (5 by default) sets it for the job.

That configuration is the job server's whole Flink configuration, so it also carries the
cluster's own ``parallelism.default``, read from the JobManager's REST API
(``/jobmanager/config``): without it Beam's job server runs a job that does not give
``--parallelism`` at parallelism 1, whatever the cluster's default (``flink run`` reads the
cluster's configuration; Beam's job server reads only the directory it is given).

In:  the pipeline options of a ``--runner=FlinkRunner`` run (``pipeline.flink``'s defaults), the
     cluster's configuration (its REST API).
Out: Beam's job server jar started with ``--flink-conf-dir``, a temporary directory holding
     ``config.yaml`` with these settings, removed when the job server stops.
State: that directory, per job server.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

import requests
from apache_beam.options.pipeline_options import FlinkRunnerOptions, PipelineOptions
from apache_beam.runners.portability import flink_runner, job_server

from pipeline.flink.job import rest_get

_LOGGER = logging.getLogger(__name__)
# what the job server takes over from the cluster's configuration
CLUSTER_SETTINGS = ('parallelism.default',)


def job_configuration(buffer_timeout_ms: int) -> dict[str, str]:
    """The Flink settings the job server applies to this service's jobs."""
    return {'execution.buffer-timeout.interval': f'{buffer_timeout_ms} ms'}


def cluster_configuration(rest_url: str) -> dict[str, str]:
    """The cluster's ``CLUSTER_SETTINGS`` that it sets, from its REST API at ``rest_url``; none
    (logged) when it does not answer: the submission then fails on its own, naming the cluster."""
    try:
        entries = rest_get(rest_url, '/jobmanager/config')
    except (requests.RequestException, ValueError) as error:
        _LOGGER.warning("the Flink cluster's configuration is unavailable: %s", error)
        return {}
    return {e['key']: e['value'] for e in entries if e.get('key') in CLUSTER_SETTINGS}


class JobServerJarUnavailable(RuntimeError):
    """No job server jar was named and Beam's could not be downloaded."""


class ConfiguredFlinkJarJobServer(flink_runner.FlinkJarJobServer):
    """Beam's Flink job server jar, started with ``--flink-conf-dir`` holding ``configuration``."""

    def __init__(self, options: PipelineOptions, configuration: Mapping[str, str]):
        super().__init__(options)
        self._conf_dir = tempfile.TemporaryDirectory(prefix='coupon-scoring-flink-conf-')
        lines = (f'{key}: {value}\n' for key, value in configuration.items())
        Path(self._conf_dir.name, 'config.yaml').write_text(''.join(lines))

    @staticmethod
    def local_jar(url, jar_cache_dir=None, user_agent=None):
        """The job server jar, downloaded if ``url`` is remote; one line naming
        FLINK_JOB_SERVER_JAR when it cannot be (Beam's error is a chain of tracebacks)."""
        try:
            return job_server.JavaJarJobServer.local_jar(url, jar_cache_dir, user_agent)
        except RuntimeError as error:
            raise JobServerJarUnavailable(
                f'Beam\'s Flink job server could not be downloaded from {url} '
                f'({str(error).split(": ", 1)[-1].split(". ")[0]}): set FLINK_JOB_SERVER_JAR '
                'to a job server jar of this Beam version (docs/runners.md, "The job server")'
            ) from None

    def java_arguments(self, job_port, artifact_port, expansion_port, artifacts_dir) -> list:
        arguments = super().java_arguments(job_port, artifact_port, expansion_port, artifacts_dir)
        return [*arguments, '--flink-conf-dir', self._conf_dir.name]

    def stop(self) -> None:
        """The JVM first, then the temporary directories.

        Beam's own ``stop`` removes the job server's temporary directory before it stops the
        JVM, which at that moment may still be deleting the cancelled job's artifacts in it:
        the removal then fails on a file already gone, and the JVM is left running with no
        driver (seen after bench and tune runs here).
        """
        try:
            if self._server is not None:
                self._server.stop()
        finally:
            if self._local_temp_root:
                shutil.rmtree(self._local_temp_root, ignore_errors=True)
                self._local_temp_root = None
            self._conf_dir.cleanup()


class ConfiguredFlinkRunner(flink_runner.FlinkRunner):
    """FlinkRunner whose job server applies ``configuration`` (``job_configuration``) to the
    jobs it submits. An uber-jar submission (``--flink_submit_uber_jar``) stays Beam's."""

    def __init__(self, configuration: Mapping[str, str]):
        super().__init__()
        self._configuration = dict(configuration)

    def default_job_server(self, options: PipelineOptions):
        flink = options.view_as(FlinkRunnerOptions)
        if flink.flink_submit_uber_jar:
            return super().default_job_server(options)
        flink.flink_master = self.add_http_scheme(flink.flink_master)
        configuration = {**cluster_configuration(flink.flink_master), **self._configuration}
        return job_server.StopOnExitJobServer(ConfiguredFlinkJarJobServer(options, configuration))
