"""python -m pipeline: runs the coupon-scoring pipeline until stopped.

Settings come from flags and environment variables (pipeline/options.py);
every other flag is Beam's. A bad setting stops the start with a message that
names it. Ctrl-C (SIGINT) and SIGTERM both stop it the same way: a drain
(transforms.kafka.drain: the read stops, what was read is written and committed,
for at most DRAIN_TIMEOUT_SECONDS), a last metrics report, then the job is
cancelled; a second signal cancels at once. Offsets are committed only once
their records have ended (transforms.kafka.offsets), so a restart resumes from
there: after a drain it repeats nothing; after a crash, or a drain that timed
out, work in flight is read again (duplicates carry the same
``focus_event_id``), none is lost. Each start is counted in the failure journal
(transforms.quarantine): a record that failed the job on consecutive starts is
dead-lettered as ``poison_pill`` on the next.

With a GROUP_ID, one process reads the group's topics (pipeline.lease): a second one started
with the same GROUP_ID stands by, says who reads, and starts its pipeline when the lease comes
to it (the active one stopped, or died: after LEASE_TIMEOUT_SECONDS). SIGTERM or Ctrl-C stop a
standby at once (exit 0). The active one keeps the lease until its pipeline has drained; if it
loses the lease while running, its read stops at once, its job is cancelled without a drain,
and it exits 1.

Secrets never reach the output: every log handler masks the settings' secret
values (message and traceback), and so do the start-up error messages.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import apache_beam as beam
import requests
from apache_beam.options.pipeline_options import (
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
)
from apache_beam.runners.runner import PipelineResult, PipelineState
from kafka.errors import KafkaError

from pipeline.exporter import ConsumerLag, OperatorView, PipelineStatus
from pipeline.flink import FlinkConfigError, with_flink_defaults
from pipeline.flink.job import FlinkJob, SavepointFailed
from pipeline.flink.runner import JobServerJarUnavailable
from pipeline.flink.savepoints import SavepointRecord, resuming, savepoint_directory
from pipeline.lease import GroupLease, NoLease, group_lease
from pipeline.metrics import MetricsSnapshot, query, report
from pipeline.options import ConfigError, CouponScoringOptions, Settings, resolve_settings
from pipeline.runner import one_worker_process, route_runner, runner_instance
from pipeline.unread import UnreadPartitions
from pipeline.wiring import build_pipeline, kafka_connection
from transforms.kafka import RunProgress, progress
from transforms.quarantine import FailureJournal

_LOGGER = logging.getLogger('pipeline')


class SecretMaskingFilter(logging.Filter):
    """Masks the settings' secret values in each record, its message and its traceback."""

    def __init__(self, settings: Settings):
        super().__init__()
        self._settings = settings

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it, without the arguments
            record.args = None
            return True
        record.msg, record.args = self._settings.redact(message), None
        if record.exc_info:
            traceback = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._settings.redact(traceback)
        if record.stack_info:
            record.stack_info = self._settings.redact(record.stack_info)
        return True


def mask_secrets_in_logs(settings: Settings) -> None:
    """Puts a SecretMaskingFilter on every handler of the root logger, if there are secrets."""
    if not settings.secrets():
        return
    masking = SecretMaskingFilter(settings)
    for handler in logging.getLogger().handlers:
        handler.addFilter(masking)


def cannot_start_message(error: Exception, settings: Settings) -> str:
    """What is printed when building the pipeline fails (a missing topic, an unreachable broker)."""
    return settings.redact(
        f'coupon-scoring: cannot start: {error!r} (BOOTSTRAP_SERVERS={settings.bootstrap_servers})'
    )


def run(argv: Optional[Sequence[str]] = None) -> int:
    if argv and ('-h' in argv or '--help' in argv):
        print_help()
        return 0
    try:
        flags = with_flink_defaults(sys.argv[1:] if argv is None else argv)
        settings = resolve_settings(PipelineOptions(flags))
        flags = resuming(flags, settings.reads_with_kafkaio, settings.group_id)
        options = PipelineOptions(flags)
    except (ConfigError, FlinkConfigError) as error:
        print(f'coupon-scoring: configuration error: {error}', file=sys.stderr)
        return 2
    mask_secrets_in_logs(settings)
    try:
        return _run(options, settings)
    except Exception:  # logged, so that the traceback is masked too
        _LOGGER.exception('coupon-scoring failed')
        return 1


def failure_journal(settings: Settings) -> FailureJournal:
    """This start, counted in the group's failure journal."""
    path = settings.failure_journal or str(
        Path('.local') / 'state' / f'failures-{settings.group_id or "no-group"}.json'
    )
    return FailureJournal.begin(path)


def _run(options: PipelineOptions, settings: Settings) -> int:
    """Takes the group's lease (standing by until it comes), runs the pipeline, releases it."""
    lease = group_lease(
        kafka_connection(settings),
        [settings.entry_topic, settings.focus_topic],
        settings.lease_timeout_s,
    )
    try:
        lease.acquire()
    except KeyboardInterrupt as stop:
        _LOGGER.info('stopped while standing by (%s): the pipeline never started', stop or 'SIGINT')
        lease.release()
        return 0
    except (ValueError, KafkaError) as error:  # a missing topic, an unreachable broker
        print(cannot_start_message(error, settings), file=sys.stderr)
        lease.release()
        return 2
    try:
        return _run_holding(options, settings, lease)
    finally:
        lease.release()


def _run_holding(options: PipelineOptions, settings: Settings, lease: GroupLease | NoLease) -> int:
    """Runs the pipeline until a signal stops it, it ends, or ``lease`` is lost (then 1)."""
    options = route_runner(options)
    inputs = [settings.entry_topic, settings.focus_topic]
    p = beam.Pipeline(runner=runner_instance(options), options=options)
    journal = failure_journal(settings)
    try:
        run_id = build_pipeline(p, settings, journal)
        unread = (
            UnreadPartitions(kafka_connection(settings), inputs)
            if settings.reads_with_kafkaio
            else None
        )
    except (ValueError, KafkaError) as error:  # a missing topic, an unreachable broker
        print(cannot_start_message(error, settings), file=sys.stderr)
        return 2
    try:
        view = operator_view(settings, progress(run_id), one_worker_process(p.options))
    except OSError as error:  # the port is taken
        print(f'coupon-scoring: METRICS_PORT (--metrics_port): {error}', file=sys.stderr)
        return 2
    lease.when_lost(progress(run_id).request)  # the read stops fetching at once
    try:
        result = p.run()
    except JobServerJarUnavailable as error:
        print(f'coupon-scoring: cannot start: {error}', file=sys.stderr)
        return 2
    runner = runner_view(result, options, progress(run_id), settings)
    take_back_ctrl_c()
    _LOGGER.info('pipeline started (start %d of this group); Ctrl-C stops it', journal.start)
    if view:
        view.status.result = result
    try:
        announce_reading(result, runner.reading)
        if runner.stop:  # the job runs: a savepoint it resumed from is spent
            SavepointRecord(settings.group_id).forget()
        while not PipelineState.is_terminal(result.state):
            if lease.lost.wait(settings.metrics_interval_s):
                raise LeaseLost(lease.why)
            snapshot = report(runner.metrics, settings.metrics_file)
            if view:
                view.refresh(snapshot)
            if unread:
                unread_partitions = unread.check()
                if view:
                    view.status.unread_partitions = unread_partitions
    except (KeyboardInterrupt, LeaseLost) as stop:
        _LOGGER.info('stopping the pipeline (%s)', stop or 'SIGINT')
        if isinstance(stop, LeaseLost):
            _LOGGER.info('no drain: what was read here and not committed is the new holder\'s')
        elif runner.drains:
            drain(result, progress(run_id), settings.drain_timeout_s)
        else:
            _LOGGER.info(
                'no drain: the workers run in other processes; a restart with this group '
                'reads again what was in flight (at-least-once, the same focus_event_id)'
            )
        report(runner.metrics, settings.metrics_file)
        if runner.stop and not isinstance(stop, LeaseLost):
            runner.stop()
        else:
            runner.cancel()
    finally:
        if view:
            view.close()
        if unread:
            unread.close()
    _LOGGER.info('pipeline %s', result.state)
    if lease.lost.is_set():
        return 1  # fenced: a service manager restarts it, as a standby
    return 0 if result.state in (PipelineState.DONE, PipelineState.CANCELLED) else 1


class LeaseLost(Exception):
    """This process no longer holds its group's lease: its pipeline stops (fencing)."""

    def __str__(self) -> str:
        return f'lost the group lease: {self.args[0]}'


def operator_view(
    settings: Settings, run: RunProgress, read_here: bool = True
) -> Optional[OperatorView]:
    """The /metrics and /health endpoints on METRICS_PORT, if set. ``read_here``: the Python read
    runs in this process, so /health can tell how long ago it polled (with Flink's PROCESS
    workers it cannot: /health is the job's state)."""
    if settings.metrics_port is None:
        return None
    lag = None
    if settings.group_id:  # without a group nothing is committed: no lag to show
        lag = ConsumerLag(kafka_connection(settings), [settings.entry_topic, settings.focus_topic])
    status = PipelineStatus(run, python_read=settings.kafka_io == 'python' and read_here)
    return OperatorView(settings.metrics_port, status, lag)


@dataclasses.dataclass(frozen=True)
class RunnerView:
    """What the driver asks of the runner: the job's metrics now, whether its read polls Kafka
    (waiting up to the given seconds), and how to cancel it."""

    metrics: Callable[[], MetricsSnapshot]
    reading: Callable[[float], bool]
    cancel: Callable[[], None]
    # the read and the commits run in this process, so a stop can drain them
    drains: bool = True
    # a stop that keeps the job's state (Flink's stop-with-savepoint), instead of a cancel
    stop: Optional[Callable[[], None]] = None


def runner_view(
    result: PipelineResult, options: PipelineOptions, run: RunProgress, settings: Settings
) -> RunnerView:
    """Prism: Beam's job service, and the read's progress in this process (its LOOPBACK worker).
    Flink: its REST API (the job service answers no metrics while a streaming job runs, and its
    cancel leaves the Flink job running), and the read's poll counter there (the Python workers
    start seconds after the job's tasks). KAFKA_IO=xlang's read runs in Java and reports
    nothing here: its job's tasks running, or at once on Prism."""
    if options.view_as(StandardOptions).runner == 'FlinkRunner':
        flink = FlinkJob(
            options.view_as(FlinkRunnerOptions).flink_master,
            options.view_as(GoogleCloudOptions).job_name,
        )

        def cancel() -> None:
            try:
                flink.cancel()
            except requests.RequestException as error:
                _LOGGER.warning('could not cancel the Flink job (cancel it in its UI): %s', error)
            result.cancel()

        def stop_with_savepoint() -> None:
            """KafkaIO's offsets are Flink state: a stop keeps them in a savepoint."""
            try:
                location = flink.stop_with_savepoint(savepoint_directory())
            except (requests.RequestException, SavepointFailed) as error:
                _LOGGER.warning(
                    'no savepoint (%s): cancelling; the next start resumes from the offsets '
                    'committed at the last completed checkpoint',
                    error,
                )
                cancel()
                return
            SavepointRecord(settings.group_id).remember(location)
            result.cancel()

        started = flink.reading if settings.kafka_io == 'python' else flink.running
        return RunnerView(
            flink.query,
            lambda timeout_s: started() or _slept(timeout_s),
            cancel,
            drains=one_worker_process(options),
            stop=stop_with_savepoint if settings.reads_with_kafkaio else None,
        )
    reading = run.wait_reading if settings.kafka_io == 'python' else (lambda _: True)
    return RunnerView(functools.partial(query, result), reading, result.cancel)


def _slept(seconds: float) -> bool:
    time.sleep(seconds)
    return False


def announce_reading(result: PipelineResult, reading: Callable[[float], bool]) -> None:
    """Logs ``pipeline reading`` once the read polls Kafka (a cold start takes a while after
    ``pipeline started``): what tests and operators wait for."""
    while not reading(0.5):
        if PipelineState.is_terminal(result.state):
            return
    _LOGGER.info('pipeline reading')


def drain(result: PipelineResult, run: RunProgress, timeout_s: float) -> None:
    """Stops the read and waits until every record read is committed, the job ends, the
    timeout passes or another signal comes; logs which."""
    run.request()
    started = time.monotonic()
    try:
        while run.in_flight() and time.monotonic() - started < timeout_s:
            if PipelineState.is_terminal(result.state):
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        _LOGGER.info('second signal: cancelling without waiting')
    left = run.in_flight()
    _LOGGER.info(
        'drain %s after %.1f s: %d records read and not committed',
        'complete' if not left else 'incomplete',
        time.monotonic() - started,
        left,
    )


def print_help() -> None:
    """The service's settings (Beam's own flags are accepted too: see Beam's PipelineOptions)."""
    parser = argparse.ArgumentParser(
        prog='python -m pipeline',
        description='The coupon-scoring pipeline. Every setting is '
        'also an environment variable (flags win). Beam pipeline options are accepted too.',
    )
    CouponScoringOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    parser.print_help()


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def take_back_ctrl_c() -> None:
    """Ctrl-C drains, as SIGTERM does. Beam's job server (StopOnExitJobServer) installs a
    SIGINT handler when the job starts that stops Prism at once, so that a drain found the
    runner gone; Prism is still stopped at exit (Beam's atexit hook)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)


def configure_logging() -> None:
    """INFO with timestamps; kafka-python's and Beam's type-hint chatter at WARNING."""
    logging.basicConfig(
        level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s'
    )
    for chatty in ('kafka', 'apache_beam.typehints'):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop, as Ctrl-C
    configure_logging()
    sys.exit(run(sys.argv[1:]))


if __name__ == '__main__':
    main()
