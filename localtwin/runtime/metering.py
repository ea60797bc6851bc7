"""Metering a worker process from ``/proc``: its peak resident memory, its CPU seconds, its wait for a core.

*Max Memory Used* is the peak RSS (``VmHWM``: a lifetime peak, as Lambda reports it per
environment). CPU time is user + system over all the process's threads, from
``/proc/<pid>/stat``, at the kernel's clock-tick resolution (usually 10 ms). The time its
threads spent runnable but waiting for a core (the scheduler's run queue) is summed from
``/proc/<pid>/task/*/schedstat`` (nanoseconds; 0 where the kernel keeps no schedstats).
All read 0 once the process is gone.
"""

from __future__ import annotations

import os
from pathlib import Path

_CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def peak_rss_kb(pid: int) -> int:
    """Peak resident set size (``VmHWM``, kB) of a live process; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, all its threads (clock-tick resolution)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 (state) is index 0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICK


def run_queue_seconds(pid: int) -> float:
    """Seconds the threads of a live process have waited on a run queue for a core (0 once it is gone)."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total / 1e9
