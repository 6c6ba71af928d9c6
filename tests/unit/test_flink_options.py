"""pipeline.flink: the flags added for --runner=FlinkRunner, and settings refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability import job_server

from pipeline.flink import HARNESS, FlinkConfigError, buffer_timeout_ms, with_flink_defaults
from pipeline.flink.job import beam_name
from pipeline.flink.runner import (
    ConfiguredFlinkJarJobServer,
    ConfiguredFlinkRunner,
    JobServerJarUnavailable,
    job_configuration,
)
from pipeline.runner import one_worker_process, runner_instance
from tests.unit.stub_http import StubHttpServer


def _flags(argv: list[str], environ: dict[str, str]) -> dict[str, str]:
    return dict(arg[2:].split('=', 1) for arg in with_flink_defaults(argv, environ) if '=' in arg)


def test_other_runners_are_left_alone() -> None:
    assert with_flink_defaults(['--runner=DirectRunner'], {}) == ['--runner=DirectRunner']


def test_flink_gets_process_workers_checkpoints_and_short_bundles() -> None:
    flags = _flags(['--runner=FlinkRunner'], {})
    assert flags['environment_type'] == 'PROCESS'
    assert flags['sdk_worker_parallelism'] == '2'
    assert json.loads(flags['environment_config'])['command'] == str(HARNESS)
    assert HARNESS.is_file()
    assert flags['checkpointing_interval'] == '10000'
    assert (flags['max_bundle_time_mills'], flags['max_bundle_size']) == ('10', '200')
    assert '--finish_bundle_before_checkpointing' in with_flink_defaults(
        ['--runner=FlinkRunner'], {}
    )
    assert flags['flink_master'] == 'localhost:8081'
    assert 'flink_job_server_jar' not in flags  # Beam's own download from Maven Central


def test_the_command_line_wins_over_defaults_and_environment(tmp_path) -> None:
    jar = tmp_path / 'job-server.jar'
    jar.write_bytes(b'')
    environ = {'FLINK_JOB_SERVER_JAR': str(jar), 'FLINK_CHECKPOINT_INTERVAL_MS': '5000'}
    argv = ['--runner', 'FlinkRunner', '--environment_type=LOOPBACK', '--flink_master=jm:8081']
    flags = _flags(argv, environ)
    assert flags['flink_job_server_jar'] == str(jar)
    assert flags['checkpointing_interval'] == '5000'
    assert flags['flink_master'] == 'jm:8081'
    assert flags['environment_type'] == 'LOOPBACK' and 'environment_config' not in flags


@pytest.mark.parametrize(
    ('variable', 'value', 'message'),
    [
        ('FLINK_JOB_SERVER_JAR', '/nowhere/job-server.jar', 'FLINK_JOB_SERVER_JAR'),
        ('FLINK_MAX_BUNDLE_TIME_MS', '0', 'FLINK_MAX_BUNDLE_TIME_MS'),
        ('FLINK_CHECKPOINT_INTERVAL_MS', 'ten', 'FLINK_CHECKPOINT_INTERVAL_MS'),
        ('FLINK_BUFFER_TIMEOUT_MS', '-1', 'FLINK_BUFFER_TIMEOUT_MS'),
    ],
)
def test_a_wrong_flink_setting_is_refused_by_name(variable, value, message) -> None:
    with pytest.raises(FlinkConfigError, match=message):
        with_flink_defaults(['--runner=FlinkRunner'], {variable: value})


def test_the_network_buffer_timeout_is_5_ms_unless_set() -> None:
    assert buffer_timeout_ms({}) == 5
    assert buffer_timeout_ms({'FLINK_BUFFER_TIMEOUT_MS': '0'}) == 0


def test_the_job_server_gets_the_buffer_timeout_as_a_flink_configuration(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv('FLINK_BUFFER_TIMEOUT_MS', '7')
    jar = tmp_path / 'job-server.jar'
    jar.write_bytes(b'')
    options = PipelineOptions(['--runner=FlinkRunner', f'--flink_job_server_jar={jar}'])
    runner = runner_instance(options)
    assert isinstance(runner, ConfiguredFlinkRunner)
    server = runner.default_job_server(options)._job_server
    arguments = server.java_arguments('1', '2', '3', str(tmp_path / 'artifacts'))
    conf_dir = Path(arguments[arguments.index('--flink-conf-dir') + 1])
    config = (conf_dir / 'config.yaml').read_text()
    assert config == 'execution.buffer-timeout.interval: 7 ms\n'  # no cluster answered
    assert runner_instance(PipelineOptions(['--runner=PrismRunner'])) is None


def job_server_config(tmp_path: Path, flink_master: str) -> str:
    jar = tmp_path / 'job-server.jar'
    jar.write_bytes(b'')
    options = PipelineOptions(
        ['--runner=FlinkRunner', f'--flink_job_server_jar={jar}', f'--flink_master={flink_master}']
    )
    server = runner_instance(options).default_job_server(options)._job_server
    arguments = server.java_arguments('1', '2', '3', str(tmp_path / 'artifacts'))
    return (Path(arguments[arguments.index('--flink-conf-dir') + 1]) / 'config.yaml').read_text()


def test_a_job_without_parallelism_gets_the_clusters_default(tmp_path) -> None:
    cluster = [
        {'key': 'parallelism.default', 'value': '2'},
        {'key': 'taskmanager.numberOfTaskSlots', 'value': '2'},
    ]

    def answer(method, path, body):
        return (200, cluster) if path == '/jobmanager/config' else (404, {})

    with StubHttpServer(answer) as api:
        config = job_server_config(tmp_path, api.base_url.removeprefix('http://'))

    assert config.splitlines() == [
        'parallelism.default: 2',
        'execution.buffer-timeout.interval: 5 ms',
    ]


class _RunningJobServer:
    """Stands for the job server's JVM: it deletes its artifacts while it is being stopped."""

    def __init__(self, artifacts: Path):
        self.artifacts = artifacts
        self.stopped = False

    def stop(self) -> None:
        for artifact in self.artifacts.iterdir():
            artifact.unlink()
        self.stopped = True


def test_stopping_the_job_server_stops_its_jvm_before_removing_its_temporary_directory(
    tmp_path,
) -> None:
    jar = tmp_path / 'job-server.jar'
    jar.write_bytes(b'')
    options = PipelineOptions(['--runner=FlinkRunner', f'--flink_job_server_jar={jar}'])
    server = ConfiguredFlinkJarJobServer(options, job_configuration(5))
    temp_root = tmp_path / 'beam-temp'
    (temp_root / 'artifacts').mkdir(parents=True)
    (temp_root / 'artifacts' / 'environment.jar').write_bytes(b'')
    jvm = _RunningJobServer(temp_root / 'artifacts')
    server._server, server._local_temp_root = jvm, str(temp_root)  # as Beam's start leaves them
    conf_dir = Path(server.java_arguments('1', '2', '3', 'a')[-1])

    server.stop()

    assert jvm.stopped
    assert not temp_root.exists() and not conf_dir.exists()


@pytest.mark.parametrize(
    ('argv', 'one_process'),
    [
        (['--runner=PrismRunner'], True),
        (['--runner=FlinkRunner', '--environment_type=LOOPBACK'], True),
        (['--runner=FlinkRunner', '--environment_type=PROCESS'], False),
    ],
)
def test_offsets_are_keyed_when_workers_are_other_processes(argv, one_process) -> None:
    assert one_worker_process(PipelineOptions(argv)) is one_process


@pytest.mark.parametrize(
    ('rest_name', 'beam_metric'),
    [
        ('[16]{CustomerSession.predictions_written', 'predictions.written'),
        ('[13]{ReadStoreEvents.dead_letters_not_json', 'dead_letters.not_json'),
        (
            '[16]{X.predictions_focus_to_prediction_ms_le_100',
            'predictions.focus_to_prediction_ms_le_100',
        ),
        ('[16]{X.RunInference_num_inferences', 'RunInference.num_inferences'),
        ('[16]{X.numRecordsOut', None),
        ('[16]{X.ref_PCollection_PCollection_24_metric_element_count_v1', None),
    ],
)
def test_flink_rest_metric_names_map_back_to_beam_names(rest_name, beam_metric) -> None:
    assert beam_name(rest_name) == beam_metric


def test_a_job_server_that_cannot_be_downloaded_is_one_line_naming_the_variable(monkeypatch):
    url = 'https://repo.maven.apache.org/maven2/org/apache/beam/x/2.73.0/x-2.73.0.jar'

    def unreachable(*args, **kwargs):
        raise RuntimeError(
            f'Unable to fetch remote job server jar at {url}: HTTP Error 404: Not Found. '
            'Also failed to fetch from Google Maven mirror at ...'
        )

    monkeypatch.setattr(job_server.JavaJarJobServer, 'local_jar', staticmethod(unreachable))
    with pytest.raises(JobServerJarUnavailable) as raised:
        ConfiguredFlinkJarJobServer.local_jar(url)
    message = str(raised.value)
    assert '\n' not in message
    assert f'from {url} (HTTP Error 404: Not Found)' in message
    assert 'set FLINK_JOB_SERVER_JAR' in message
