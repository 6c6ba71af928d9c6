"""One measurement point: one system under one offered load, on fresh topics.

The order of a point: create fresh topics; start the probe consumer and the system; sample
its CPU and the scorer's counters; produce the seeded store traffic (``standins.store_traffic``),
a number of whole visits at the offered rate or as fast as the broker takes them; wait until
every valid focus event is processed; sample the CPU, the peak RSS and the scorer's counters
again; read the consumer lag; stop the system; delete the topics.

A focus event counts as processed when its first output arrived, or when the system says it
legitimately produced none (no coupon at or above the threshold). Independently of what the
system says, the integration tests' model tells which focus events must have an output: those
whose output never arrived are counted as missing. Throughput is processed
focus events over the window from the first focus event's produce time to the last first
output, or to the end of the load if that came later. The drain ends when all are processed,
at the drain timeout, or when no focus event was processed for ``STALL_S``. Latency is from a
focus event's produce time (its Kafka CreateTime) to the arrival of its first output at the
probe, over the focus events produced after the warm-up (a replay has none: its latencies are
the time its backlog takes to drain).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.probe import Observations, OutputProbe
from bench.procstat import GroupUsage, group_usage, machine_busy_s
from bench.rig import Rig, ScorerCounts
from bench.systems import Run, System
from standins.store_traffic import (
    DEFAULT_SEED,
    MAX_FOCUS_PER_VISIT,
    TrafficConfig,
    TrafficSummary,
    produce,
)

KEEP_UP_SHARE = 0.9  # a system keeps up if its throughput is >= this share of the rate sent
PROCESSED_SHARE = 0.99  # ... and it processed at least this share of the focus events sent
LAG_SETTLE_S = 5.0  # how long to wait for the last offset commits before reading the lag
CHECK_INTERVAL_S = 0.25
MEAN_FOCUS_PER_VISIT = (1 + MAX_FOCUS_PER_VISIT) / 2  # a visit has 1..MAX focus events, uniformly
STALL_S = 10.0  # the drain gives up when no focus event was processed for this long


@dataclass(frozen=True)
class Load:
    """Offered load: ``visits`` complete visits of the seeded traffic, their focus events paced at
    ``rate`` per second, or (``rate`` None) replayed as fast as the broker takes them.

    Whole visits, rather than a duration, make every system get exactly the same messages, and
    no focus event is left waiting for an entry that a cut-off stream never sends.
    """

    visits: int
    rate: float | None = None

    @classmethod
    def paced(cls, rate: float, duration_s: float) -> Load:
        """About ``duration_s`` seconds of traffic at ``rate`` focus events/s."""
        return cls(max(1, round(rate * duration_s / MEAN_FOCUS_PER_VISIT)), rate)

    @property
    def label(self) -> str:
        return f'{self.rate:g}/s' if self.rate is not None else f'replay {self.visits} visits'

    def traffic(
        self, bootstrap_servers: str, entry_topic: str, focus_topic: str, seed: int
    ) -> TrafficConfig:
        """The store traffic of this load (the stand-in's defaults for its shape)."""
        return TrafficConfig(
            bootstrap_servers=bootstrap_servers,
            entry_topic=entry_topic,
            focus_topic=focus_topic,
            rate=self.rate or 1.0,
            visits=self.visits,
            as_fast_as_possible=self.rate is None,
            seed=seed,
        )


@dataclass(frozen=True)
class Timing:
    """How a point is run: warm-up left out of the latencies, drain timeout, traffic seed."""

    warmup_s: float = 5.0
    drain_timeout_s: float = 20.0
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class PointResult:
    """The figures of one point (latencies in ms, rates in focus events/s, memory in MiB)."""

    section: str
    system: str
    label: str
    scorer_latency_ms: int
    load: str
    offered_rate: float | None
    sent_rate: float
    focus_events: int
    with_output: int
    without_output: int
    missing_outputs: int  # output due (by the independent model) but never arrived
    complete: bool
    window_s: float
    drain_s: float
    throughput: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    latency_samples: int
    outputs: int
    dead_letters: int
    scorer_requests: int
    scorer_instances: int
    scorer_rejected: int
    central_requests: int
    cpu_s: float
    machine_cpu_s: float  # the whole machine, same interval: the system, broker, bench and others
    cpu_startup_s: float
    peak_rss_mib: float
    lag_end: int
    central_latency_ms: int = 0
    first_output_ms: float | None = None  # first valid focus event produced -> first output
    processes: list[dict[str, object]] = field(
        default_factory=list
    )  # CPU s of the window, peak RSS

    @property
    def processed(self) -> int:
        return min(self.focus_events, self.with_output + self.without_output)

    @property
    def keeps_up(self) -> bool:
        """Throughput >= ``KEEP_UP_SHARE`` of the rate sent, >= ``PROCESSED_SHARE`` processed.

        Not all: a few focus events left behind (e.g. waiting in a session) show in ``processed``
        and ``complete`` but do not make the sweep stop.
        """
        return (
            self.processed >= PROCESSED_SHARE * self.focus_events
            and self.throughput >= KEEP_UP_SHARE * self.sent_rate
        )

    @property
    def requests_per_focus(self) -> float | None:
        return self.scorer_requests / self.focus_events if self.focus_events else None

    @property
    def rows_per_request(self) -> float | None:
        return self.scorer_instances / self.scorer_requests if self.scorer_requests else None

    @property
    def scorer_requests_per_s(self) -> float | None:
        """Scorer requests over the window: what the system asked of the scorer stand-in."""
        return self.scorer_requests / self.window_s if self.window_s else None

    @property
    def central_requests_per_s(self) -> float | None:
        """Central requests over the window: what the system asked of the central stand-in."""
        return self.central_requests / self.window_s if self.window_s else None

    @property
    def cpu_ms_per_focus(self) -> float | None:
        return 1000 * self.cpu_s / self.processed if self.processed else None

    @property
    def cpu_cores(self) -> float | None:
        """The system's CPU over the window, in cores."""
        return self.cpu_s / self.window_s if self.window_s else None

    @property
    def machine_cores(self) -> float | None:
        """The whole machine's busy CPU over the window, in cores."""
        return self.machine_cpu_s / self.window_s if self.window_s else None

    def as_dict(self) -> dict[str, object]:
        """Every field and derived figure, for JSON and CSV."""
        derived = {
            'processed': self.processed,
            'keeps_up': self.keeps_up,
            'requests_per_focus': self.requests_per_focus,
            'rows_per_request': self.rows_per_request,
            'scorer_requests_per_s': self.scorer_requests_per_s,
            'central_requests_per_s': self.central_requests_per_s,
            'cpu_ms_per_focus': self.cpu_ms_per_focus,
            'cpu_cores': self.cpu_cores,
            'machine_cores': self.machine_cores,
        }
        return {**asdict(self), **derived}


@dataclass(frozen=True)
class _Sample:
    """The system's processes, the machine's busy time and the stand-ins' counters at one moment."""

    usage: GroupUsage
    machine_busy_s: float
    scorer: ScorerCounts
    central_requests: int

    @classmethod
    def take(cls, rig: Rig, leader: int) -> _Sample:
        return cls(
            group_usage(leader), machine_busy_s(), rig.scorer_counts(), rig.central_requests()
        )


def measure(
    rig: Rig, system: System, load: Load, timing: Timing, section: str, work_root: Path
) -> PointResult:
    """Run ``system`` under ``load`` on fresh topics and return its figures."""
    topics = rig.fresh_topics(system.name)
    run = Run(rig, topics, _work_dir(work_root, section, system.label, load.label))
    try:
        with (
            OutputProbe(rig.bootstrap_servers, topics.focus, topics.prediction) as probe,
            system.running(run) as leader,
        ):
            before = _Sample.take(rig, leader)
            sent = produce(
                load.traffic(rig.bootstrap_servers, topics.entry, topics.focus, timing.seed)
            )
            complete = _drain(probe, system, run, sent.focus_events, timing.drain_timeout_s)
            after = _Sample.take(rig, leader)
            lag = _settled_lag(rig, system.group(run), run)
            without_output = system.without_output(run)
            seen = probe.snapshot()
            dead_letters = rig.end_offsets_total(topics.dead_letter)
    finally:
        rig.delete_topics(topics)
    return PointResult(
        section=section,
        system=system.name,
        label=system.label,
        scorer_latency_ms=rig.scorer_latency_ms,
        central_latency_ms=rig.central_latency_ms,
        load=load.label,
        offered_rate=load.rate,
        sent_rate=sent.focus_rate,
        focus_events=sent.focus_events,
        with_output=seen.with_output,
        without_output=without_output,
        missing_outputs=seen.missing_outputs(_output_due(rig, system)),
        complete=complete,
        **_timing_figures(seen, sent, without_output, timing.warmup_s if load.rate else 0.0),
        outputs=seen.outputs,
        dead_letters=dead_letters,
        **_usage_figures(before, after),
        lag_end=lag,
    )


def _output_due(rig: Rig, system: System) -> Callable[[int, int], bool]:
    """Which valid focus events must have an output: those with coupons, or all for a forwarder."""
    return rig.has_coupons if system.scores else lambda _customer_id, _department_id: True


def _work_dir(root: Path, *parts: str) -> Path:
    """``root/<parts joined, made file-name safe>``, created."""
    name = re.sub(r'[^A-Za-z0-9._=-]+', '_', '-'.join(parts))
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _drain(probe: OutputProbe, system: System, run: Run, expected: int, timeout_s: float) -> bool:
    """Wait until ``expected`` focus events are processed, the timeout passes, or outputs stop
    coming for ``STALL_S``; return whether all were processed."""
    deadline = time.monotonic() + timeout_s
    progress, progressed_at = -1, time.monotonic()
    while (done := probe.with_output() + system.without_output(run)) < expected:
        now = time.monotonic()
        if done != progress:
            progress, progressed_at = done, now
        if now >= deadline or now - progressed_at >= STALL_S:
            return False
        time.sleep(CHECK_INTERVAL_S)
    return True


def _settled_lag(rig: Rig, group: str, run: Run) -> int:
    """The group's lag on the inputs, once it reaches 0 or after ``LAG_SETTLE_S``."""
    deadline = time.monotonic() + LAG_SETTLE_S
    while (lag := rig.consumer_lag(group, run.topics)) and time.monotonic() < deadline:
        time.sleep(CHECK_INTERVAL_S * 2)
    return lag


def _timing_figures(
    seen: Observations, sent: TrafficSummary, without_output: int, warmup_s: float
) -> dict[str, object]:
    """Window, drain time, throughput and latency percentiles of a point."""
    first = seen.first_produced_s() or 0.0
    load_end_s = first + sent.elapsed_s
    end = max(seen.last_arrival_s() or 0.0, load_end_s)
    window_s = end - first
    processed = min(sent.focus_events, seen.with_output + without_output)
    latencies_ms = [1000 * s for s in seen.latencies_s(first + warmup_s)]
    return {
        'window_s': round(window_s, 2),
        'drain_s': round(end - load_end_s, 2),
        'throughput': round(processed / window_s, 2) if window_s > 0 else 0.0,
        **{
            f'p{round(q * 100)}_ms': _rounded(percentile(latencies_ms, q))
            for q in (0.50, 0.95, 0.99)
        },
        'max_ms': _rounded(max(latencies_ms, default=None)),
        'latency_samples': len(latencies_ms),
        'first_output_ms': _rounded(
            None
            if (arrived := seen.first_arrival_s_overall()) is None
            else 1000 * (arrived - first)
        ),
    }


def _usage_figures(before: _Sample, after: _Sample) -> dict[str, object]:
    """CPU, memory and scorer figures of a point, from the samples around the load."""
    scorer = after.scorer - before.scorer
    return {
        'scorer_requests': scorer.requests,
        'scorer_instances': scorer.instances,
        'scorer_rejected': scorer.rejected,
        'central_requests': after.central_requests - before.central_requests,
        'cpu_s': round(after.usage.cpu_since(before.usage), 2),
        'machine_cpu_s': round(after.machine_busy_s - before.machine_busy_s, 2),
        'cpu_startup_s': round(before.usage.cpu_s, 2),
        'peak_rss_mib': round(after.usage.peak_rss_mib, 1),
        'processes': after.usage.breakdown_since(before.usage),
    }


def percentile(values: list[float], quantile: float) -> float | None:
    """The ``quantile`` of ``values``, interpolating between ranks; None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * quantile
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
