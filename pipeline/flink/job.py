"""The pipeline's job on a Flink cluster, through Flink's REST API: ``FlinkJob`` (its state, its
metrics, its cancellation, its stop with a savepoint).

Cancelling the job through Beam's job service ends the job server's wait for it, not the
Flink job: seen here, the job kept running (and held its slots) after the submitting process
had exited; ``cancel`` asks Flink itself.

On Flink the portable job service answers no Beam metrics while a streaming job runs. Beam's
Flink runner registers each Beam metric as a Flink metric of the operator that reports it
(``<namespace>.<name>``, which the REST API shows as ``<namespace>_<name>``): counters as
Flink counters, distributions as gauges whose value is ``DistributionResult{sum=.., count=..,
min=.., max=..}``. ``FlinkJob.query`` sums them over the job's vertices and subtasks into
the same ``MetricsSnapshot`` the Prism path reads from the job service, so the log line, the
metrics file and the Prometheus endpoint show the same names on both runners.

State: the job's id, once found by its name.
"""

from __future__ import annotations

import re
import time
from typing import Any, Iterator, Optional
from urllib.parse import quote

import requests

from pipeline.metrics import MetricsSnapshot

# The namespaces of the pipeline's metrics (transforms/*), and of Beam's RunInference.
NAMESPACES = (
    'BatchElements',
    'RunInference',
    'contexts',
    'dead_letters',
    'events',
    'offsets',
    'predictions',
    'scorer',
    'selection',
    'sessions',
)
_DISTRIBUTION = re.compile(r'DistributionResult\{sum=(-?\d+), count=(\d+)')
TIMEOUT_S = 5.0
# Flink's REST server refuses a request line longer than 4096 bytes (Netty's default) with a 404;
# the metric ids are long (operator, namespace, name) and each latency histogram has a bucket
# counter per bound, so the ids are asked for in groups whose query stays below this
MAX_QUERY_CHARS = 3000


def beam_name(rest_name: str) -> Optional[str]:
    """``namespace.name`` of a REST metric name ``<operator>.<namespace>_<name>``; None for
    Flink's own metrics and Beam's system metrics."""
    _, _, name = rest_name.partition('.')
    for namespace in NAMESPACES:
        if name.startswith(namespace + '_'):
            return f'{namespace}.{name[len(namespace) + 1 :]}'
    return None


class SavepointFailed(RuntimeError):
    """The job could not be stopped with a savepoint."""


class FlinkJob:
    """The Flink job named ``job_name`` on the cluster at ``rest_url``."""

    def __init__(self, rest_url: str, job_name: str):
        self._rest = rest_url.rstrip('/')
        if not self._rest.startswith(('http://', 'https://')):
            self._rest = 'http://' + self._rest
        self._job_name = job_name
        self._job_id: Optional[str] = None

    def job(self) -> Optional[dict[str, Any]]:
        """The job's overview (``state``, ``tasks``), the newest of that name; None before it
        is submitted."""
        jobs = [j for j in self._get('/jobs/overview')['jobs'] if j['name'] == self._job_name]
        if not jobs:
            return None
        newest = max(jobs, key=lambda j: j['start-time'])
        self._job_id = newest['jid']
        return newest

    def running(self) -> bool:
        """Whether the job and every one of its tasks run (False while the REST API does not
        answer)."""
        try:
            job = self.job()
        except requests.RequestException:
            return False
        return bool(
            job and job['state'] == 'RUNNING' and job['tasks']['running'] == job['tasks']['total']
        )

    def reading(self) -> bool:
        """Whether the job runs and its Python Kafka read has polled (``events.polls``, counted
        once Flink has taken the workers' metrics of a bundle)."""
        try:
            return self.running() and self.query().counters.get('events.polls', 0) > 0
        except requests.RequestException:
            return False

    def cancel(self) -> None:
        """Cancels the job in Flink, if it runs (or restarts)."""
        job = self.job()
        if job and job['state'] not in ('FINISHED', 'CANCELED', 'FAILED'):
            response = requests.patch(
                f'{self._rest}/jobs/{job["jid"]}', params={'mode': 'cancel'}, timeout=TIMEOUT_S
            )
            response.raise_for_status()

    def stop_with_savepoint(self, directory: str, timeout_s: float = 120.0) -> str:
        """Flink's stop-with-savepoint: the sources stop, a savepoint is taken into
        ``directory`` (KafkaIO commits its offsets to the group when it completes), then the
        job finishes. Returns the savepoint's location; SavepointFailed says why not."""
        job = self.job()
        if not job or job['state'] != 'RUNNING':
            raise SavepointFailed(f'the job is {job["state"] if job else "not found"}')
        response = requests.post(
            f'{self._rest}/jobs/{job["jid"]}/stop',
            json={'targetDirectory': directory, 'drain': False},
            timeout=TIMEOUT_S,
        )
        response.raise_for_status()
        trigger = response.json()['request-id']
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = self._get(f'/jobs/{job["jid"]}/savepoints/{trigger}')
            if answer['status']['id'] == 'COMPLETED':
                operation = answer.get('operation', {})
                if 'location' in operation:
                    return operation['location']
                raise SavepointFailed(str(operation.get('failure-cause', operation))[:500])
            time.sleep(0.5)
        raise SavepointFailed(f'no savepoint after {timeout_s:.0f} s')

    def query(self) -> MetricsSnapshot:
        """The pipeline's counters and distributions now, summed over vertices and subtasks."""
        if self._job_id is None and self.job() is None:
            return MetricsSnapshot()
        counters: dict[str, int] = {}
        distributions: dict[str, tuple[int, int]] = {}
        for vertex in self._get(f'/jobs/{self._job_id}')['vertices']:
            self._add_vertex(vertex, counters, distributions)
        return MetricsSnapshot(counters, distributions)

    def _add_vertex(
        self,
        vertex: dict[str, Any],
        counters: dict[str, int],
        distributions: dict[str, tuple[int, int]],
    ) -> None:
        base = f'/jobs/{self._job_id}/vertices/{vertex["id"]}'
        names = [m['id'] for m in self._get(f'{base}/subtasks/metrics') if beam_name(m['id'])]
        if not names:
            return
        for subtask in range(vertex['parallelism']):
            for metric in self._metrics(f'{base}/subtasks/{subtask}/metrics', names):
                name, value = beam_name(metric['id']), str(metric['value'])
                distribution = _DISTRIBUTION.match(value)
                if distribution:
                    count, total = distributions.get(name, (0, 0))
                    distributions[name] = (
                        count + int(distribution.group(2)),
                        total + int(distribution.group(1)),
                    )
                elif value.lstrip('-').isdigit():
                    counters[name] = counters.get(name, 0) + int(value)

    def _metrics(self, path: str, names: list[str]) -> Iterator[dict[str, Any]]:
        for group in query_groups(names):
            yield from self._get(path, get=','.join(group))

    def _get(self, path: str, **params: str) -> Any:
        return rest_get(self._rest, path, **params)


def rest_get(rest_url: str, path: str, **params: str) -> Any:
    """The JSON answer of Flink's REST API at ``rest_url`` (``http://host:port``) to a GET of
    ``path``; raises ``requests.RequestException`` on no answer or an error status."""
    response = requests.get(rest_url.rstrip('/') + path, params=params, timeout=TIMEOUT_S)
    response.raise_for_status()
    return response.json()


def query_groups(names: list[str], max_chars: int = MAX_QUERY_CHARS) -> Iterator[list[str]]:
    """``names`` in order, in groups whose comma-joined, URL-quoted length stays within
    ``max_chars`` (a name longer than that alone is a group of its own)."""
    group: list[str] = []
    length = 0
    for name in names:
        quoted = len(quote(name, safe='')) + 3  # and the quoted comma before it
        if group and length + quoted > max_chars:
            yield group
            group, length = [], 0
        group.append(name)
        length += quoted
    if group:
        yield group
