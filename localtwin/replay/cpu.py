"""Where the replay's cores went: every process's CPU seconds over the replay, and the machine's.

Two :class:`CpuReading` s, taken just before the mapping starts and just after it has
drained, give a :class:`CpuSplit` of the cores' time over that interval
(``cores x wall`` core-seconds): the function's workers (inits included), the endpoint's
process (moto's server), this process (the mapping, the runtime's glue, the progress
bars), the rest of the machine (other jobs), and idle. The machine's busy and idle time
come from ``/proc/stat``, the processes' from ``/proc/<pid>/stat`` and
:func:`time.process_time`; what the readings do not cover (their skew and resolution, a
clock tick each) is :attr:`CpuSplit.unaccounted_s`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localtwin.runtime.metering import cpu_seconds

_CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """``(busy, idle)`` core-seconds of the whole machine since boot (``/proc/stat``; idle includes iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICK, (idle + iowait) / _CLOCK_TICK


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds so far: the machine's, the workers', the endpoint's and this process's."""

    at: float  # time.perf_counter()
    machine_busy_s: float
    machine_idle_s: float
    workers_s: float
    endpoint_s: float
    this_process_s: float


def read_cpu(endpoint_pid: int, workers_cpu_s: Callable[[], float]) -> CpuReading:
    """A reading now; ``workers_cpu_s`` gives the function's workers' CPU seconds so far."""
    busy, idle = machine_cpu_seconds()
    return CpuReading(time.perf_counter(), busy, idle, workers_cpu_s(), cpu_seconds(endpoint_pid), time.process_time())


@dataclass(frozen=True)
class CpuSplit:
    """The cores' time between two readings, in core-seconds."""

    wall_s: float
    cores: int
    workers_s: float
    endpoint_s: float
    this_process_s: float
    other_s: float  # the machine's other processes
    idle_s: float

    @property
    def capacity_s(self) -> float:
        """``cores x wall``."""
        return self.cores * self.wall_s

    @property
    def unaccounted_s(self) -> float:
        """Capacity the readings do not place (their skew; positive or negative, a few clock ticks)."""
        placed = self.workers_s + self.endpoint_s + self.this_process_s + self.other_s + self.idle_s
        return self.capacity_s - placed


def cpu_split(start: CpuReading, end: CpuReading, cores: int | None = None) -> CpuSplit:
    """The split of the interval between the readings ``start`` and ``end``."""
    workers = end.workers_s - start.workers_s
    endpoint = end.endpoint_s - start.endpoint_s
    this_process = end.this_process_s - start.this_process_s
    busy = end.machine_busy_s - start.machine_busy_s
    return CpuSplit(
        wall_s=end.at - start.at,
        cores=cores or os.cpu_count() or 1,
        workers_s=workers,
        endpoint_s=endpoint,
        this_process_s=this_process,
        other_s=max(0.0, busy - workers - endpoint - this_process),
        idle_s=end.machine_idle_s - start.machine_idle_s,
    )
