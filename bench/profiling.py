"""Where the pipeline's time goes: py-spy samples its Python process while it runs under load.

``py-spy record --format raw`` writes one line per distinct stack, ``frame;frame;...;frame
count``, root first, each frame ``function (file:line)``. The pipeline's Python process holds
the driver and the SDK harness (Prism runs Python transforms in LOOPBACK workers, threads of
that process); Prism itself is Go and not sampled: its CPU comes from ``/proc``. With
``--gil`` only the thread holding the GIL is sampled, so the samples are where Python runs
(waits on locks and sockets without the GIL are left out).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.systems import Run, System

SAMPLE_RATE_HZ = 50  # 100 Hz falls seconds behind on 2 busy cores
STOP_TIMEOUT_S = 30.0
TOP = 15
OWN_CODE = re.compile(r'^(transforms|pipeline)/')
_FRAME = re.compile(r'(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$')
# Areas by the file of the innermost frame that belongs to one (paths as py-spy shows them),
# first pattern that matches wins; the standard library's generic parts (threading, queues,
# sockets, collections) have no area, so their samples go to the library that called them.
AREAS = (
    ('kafka-python', r'^kafka/'),
    ('gRPC (Fn API data and control planes)', r'^grpc/'),
    ('protobuf', r'^(google/)?protobuf/'),
    ('Beam metrics', r'^apache_beam/metrics/'),
    ('Beam coders', r'^apache_beam/coders/'),
    ('Beam RunInference', r'^apache_beam/ml/'),
    ('numpy (BatchElements sizing)', r'^numpy/'),
    ('Beam SDK harness', r'^apache_beam/runners/'),
    ('Beam, other', r'^apache_beam/'),
    ('HTTP clients (requests, urllib3, http)', r'^(requests|urllib3|http)/'),
    ('fastavro', r'^fastavro/'),
    ('json', r'^json/'),
    ('pipeline code (transforms/, pipeline/)', OWN_CODE.pattern),
)


def py_spy() -> str | None:
    """The py-spy executable (a ``bench/requirements.txt`` package) of this venv, else on PATH."""
    return shutil.which('py-spy', path=str(Path(sys.executable).parent)) or shutil.which('py-spy')


@dataclass(frozen=True)
class Profiled:
    """A system whose process-group leader py-spy samples while it runs."""

    inner: System
    output: Path

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def label(self) -> str:
        return f'{self.inner.label} under py-spy'

    @property
    def scores(self) -> bool:
        return self.inner.scores

    @contextlib.contextmanager
    def running(self, run: Run) -> Iterator[int]:
        with self.inner.running(run) as leader:
            command = [
                py_spy() or 'py-spy',
                'record',
                '--pid',
                str(leader),
                '--format',
                'raw',
                '--rate',
                str(SAMPLE_RATE_HZ),
                '--gil',
                '--nonblocking',
                '--output',
                str(self.output),
            ]
            with open(self.output.with_suffix('.log'), 'w') as log:
                spy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            try:
                yield leader
            finally:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
                try:
                    spy.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait()

    def group(self, run: Run) -> str:
        return self.inner.group(run)

    def without_output(self, run: Run) -> int:
        return self.inner.without_output(run)


@dataclass(frozen=True)
class Profile:
    """Shares of the samples: by area, by function (own samples), by pipeline function (inclusive)."""

    samples: int
    areas: list[tuple[str, float]]
    own: list[tuple[str, float]]
    own_code: list[tuple[str, float]]  # the pipeline's functions, samples in them and below

    def as_dict(self) -> dict[str, object]:
        return {
            'samples': self.samples,
            'areas': self.areas,
            'own': self.own,
            'own_code': self.own_code,
        }


def summarize(raw_path: Path, top: int = TOP) -> Profile:
    """The :class:`Profile` of a py-spy raw file."""
    own: Counter[str] = Counter()
    own_code: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    for frames, count in _stacks(raw_path):
        own[frames[-1]] += count
        own_code.update(dict.fromkeys({f for f in frames if OWN_CODE.match(_file_of(f))}, count))
        areas[area_of(frames)] += count
    total = sum(own.values())

    def shares(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return (
            [(name, round(count / total, 4)) for name, count in counter.most_common(n)]
            if total
            else []
        )

    return Profile(total, shares(areas, len(AREAS) + 1), shares(own, top), shares(own_code, top))


def _stacks(raw_path: Path) -> Iterator[tuple[list[str], int]]:
    """(frames as ``function (file)``, root first; sample count) per line of the raw file."""
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(' ')
        frames = [_short(frame) for frame in stack.split(';') if frame]
        if frames and count.isdigit():
            yield frames, int(count)


def _short(frame: str) -> str:
    """``function (file:line)`` without the line, so a function's samples add up."""
    match = _FRAME.match(frame)
    return f"{match['function']} ({match['file']})" if match else frame


def _file_of(frame: str) -> str:
    """The file of a ``function (file)`` frame."""
    return frame[frame.rfind('(') + 1 : -1]


def area_of(frames: list[str]) -> str:
    """The area (:data:`AREAS`) of a stack: that of its innermost frame that has one, else 'other'."""
    for frame in reversed(frames):
        file = _file_of(frame)
        area = next((name for name, pattern in AREAS if re.search(pattern, file)), None)
        if area is not None:
            return area
    return 'other'
