"""CPU time and peak memory of a process group, and the machine's busy time, from ``/proc``.

The pipeline runs as ``python -m pipeline`` in its own session (so its own process group)
plus the Prism binary it starts; every process whose process group is the leader's pid
is counted. Linux only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path('/proc')
_CLOCK_TICKS = os.sysconf('SC_CLK_TCK')
# Fields of /proc/<pid>/stat after the ')' that closes the command name (field 2).
_PGRP, _UTIME, _STIME = 2, 11, 12


@dataclass(frozen=True)
class ProcessUsage:
    """One process: its name, CPU seconds so far (user + system), peak RSS (VmHWM) and RSS now
    (VmRSS)."""

    pid: int
    name: str
    cpu_s: float
    peak_rss_kib: int
    rss_kib: int = 0


@dataclass(frozen=True)
class GroupUsage:
    """The processes of one process group at one moment."""

    processes: tuple[ProcessUsage, ...]

    @property
    def cpu_s(self) -> float:
        """CPU seconds of all the group's processes since they started."""
        return sum(p.cpu_s for p in self.processes)

    @property
    def peak_rss_mib(self) -> float:
        """The sum of the processes' peak RSS: an upper bound of the group's peak."""
        return sum(p.peak_rss_kib for p in self.processes) / 1024

    def cpu_since(self, earlier: GroupUsage) -> float:
        """CPU seconds spent between ``earlier`` and this sample (processes matched by pid)."""
        return sum(self._cpu_since(earlier).values())

    def breakdown_since(self, earlier: GroupUsage) -> list[dict[str, object]]:
        """Per process: CPU seconds since ``earlier`` and peak RSS, for the JSON summary."""
        cpu = self._cpu_since(earlier)
        return [
            {
                'pid': p.pid,
                'name': p.name,
                'cpu_s': round(cpu[p.pid], 2),
                'peak_rss_mib': round(p.peak_rss_kib / 1024, 1),
            }
            for p in self.processes
        ]

    def _cpu_since(self, earlier: GroupUsage) -> dict[int, float]:
        before = {p.pid: p.cpu_s for p in earlier.processes}
        return {p.pid: p.cpu_s - before.get(p.pid, 0.0) for p in self.processes}


def group_usage(leader: int) -> GroupUsage:
    """The usage of every live process in the process group led by ``leader``."""
    found = (_usage(entry) for entry in _PROC.iterdir() if entry.name.isdigit())
    return GroupUsage(tuple(u for u, group in filter(None, found) if group == leader))


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot, all cores (``/proc/stat``)."""
    fields = [int(value) for value in (_PROC / 'stat').read_text().split('\n', 1)[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / _CLOCK_TICKS  # user..steal; guest is within user


def _usage(entry: Path) -> tuple[ProcessUsage, int] | None:
    """The usage and process group of the process at ``entry``, or None if it is gone."""
    try:
        stat = (entry / 'stat').read_text()
        status = (entry / 'status').read_text()
    except OSError:
        return None
    name = stat[stat.index('(') + 1 : stat.rindex(')')]
    fields = stat[stat.rindex(')') + 2 :].split()
    cpu_s = (int(fields[_UTIME]) + int(fields[_STIME])) / _CLOCK_TICKS
    usage = ProcessUsage(
        int(entry.name), name, cpu_s, _status_kib(status, 'VmHWM'), _status_kib(status, 'VmRSS')
    )
    return usage, int(fields[_PGRP])


def _status_kib(status: str, key: str) -> int:
    """A ``kB`` value of ``/proc/<pid>/status`` (0 for kernel threads, which have none)."""
    for line in status.splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1])
    return 0
