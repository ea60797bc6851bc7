"""One row per measured invocation, and the medians and spreads summarised from them.

Both targets produce :class:`Measurement` rows (the CSV holds every one):

``kind``
    ``cold`` (a fresh execution environment's first invocation: ``init_ms`` set),
    ``warm`` (a warmed environment; the figures the projection uses), or ``quota``
    (a warm invocation under a CPU quota matching ``memory_mb``, checking the projection).
``cpu_ms``, ``runq_wait_ms``
    Local only: CPU time of the worker process (its threads, counted per thread) and its
    time spent runnable but waiting for a CPU, in nanoseconds from
    ``/proc/<pid>/task/*/schedstat`` (:func:`experiments.cost.measure_local.schedstat_ms_since`;
    the runtime's own ``cpu_tick_ms`` has the kernel's 10 ms tick resolution).
    Cold rows are batches of one record: ``init_cpu_ms`` is the new worker's CPU time
    from its start to the end of that first invocation, less the invocation's own
    (tick-resolution) CPU, and ``runq_wait_ms`` is its whole queueing time so far; the
    single-record invocation (a few ms warm) is small beside a cold start's init (seconds).

The *off-CPU* time of an invocation is ``duration - cpu - runq_wait`` (at least 0): the
time the function waited for something other than a CPU (I/O, the Runtime API). Time
spent queueing for a CPU is this shared machine's contention, not the function's, and
Lambda's CPU share replaces it, so the projection excludes it.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from experiments.cost.workload import Workload
    from localtwin.runtime.report import Report


@dataclass
class Measurement:
    """One invocation's figures (ms unless named otherwise)."""

    target: str
    kind: str
    architecture: str
    memory_mb: int
    batch_size: int
    repetition: int
    duration_ms: float
    billed_ms: int
    max_memory_mb: int
    init_ms: float | None = None
    init_cpu_ms: float | None = None
    cpu_ms: float | None = None
    cpu_tick_ms: float | None = None
    runq_wait_ms: float | None = None
    throttled_ms: float | None = None
    quota_period_ms: float | None = None
    payload_bytes: int = 0
    text_chars_max: int | None = None
    error: str = ""
    load_1m: float | None = None
    request_id: str = ""

    @classmethod
    def from_report(cls, report: Report, work: Workload, **rest: Any) -> Measurement:
        """A row of the ``REPORT`` line's figures for one invocation of ``work``; ``rest`` the other fields."""
        figures = {
            "memory_mb": report.memory_mb,
            "batch_size": work.batch_size,
            "duration_ms": report.duration_ms,
            "billed_ms": report.billed_ms,
            "max_memory_mb": report.max_memory_mb,
            "init_ms": report.init_ms,
            "payload_bytes": work.payload_bytes,
            "text_chars_max": work.text_chars_max,
            "request_id": report.request_id,
        }
        return cls(**{**figures, **rest})

    @property
    def off_cpu_ms(self) -> float | None:
        """``duration - cpu - runq_wait``, at least 0; None without CPU figures."""
        if self.cpu_ms is None:
            return None
        return max(0.0, self.duration_ms - self.cpu_ms - (self.runq_wait_ms or 0.0))

    @classmethod
    def columns(cls) -> list[str]:
        """CSV columns: every field, then the derived ``off_cpu_ms``."""
        return [f.name for f in fields(cls)] + ["off_cpu_ms"]

    def as_row(self) -> dict[str, object]:
        row: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        row["off_cpu_ms"] = self.off_cpu_ms
        return row


def invocation_error(error_type: str | None, response: Any) -> str:
    """The ``error`` of a row: '' for a clean invocation, else ``error_type``, or
    ``"<n> batchItemFailures"`` when the handler reported failed records in ``response``."""
    if error_type:
        return error_type
    failures = (response.get("batchItemFailures") if isinstance(response, dict) else None) or []
    return f"{len(failures)} batchItemFailures" if failures else ""


_INTS = {"memory_mb", "batch_size", "repetition", "billed_ms", "max_memory_mb", "payload_bytes", "text_chars_max"}
_TEXT = {"target", "kind", "architecture", "error", "request_id"}


def read_measurements(path: Path) -> list[Measurement]:
    """Rows of a ``measurements.csv`` written by the report (to re-price without re-measuring)."""
    names = {f.name for f in fields(Measurement)}
    rows = []
    with path.open(newline="") as fh:
        for raw in csv.DictReader(fh):
            values: dict[str, object] = {}
            for key, text in raw.items():
                if key not in names:
                    continue  # derived columns (off_cpu_ms)
                if key in _TEXT:
                    values[key] = text or ""
                elif text in ("", None):
                    values[key] = None
                else:
                    values[key] = int(float(text)) if key in _INTS else float(text)
            # Each value parsed to its column's type above; mypy can't match a key known at run time to its field.
            rows.append(Measurement(**values))  # type: ignore[arg-type]
    return rows


@dataclass(frozen=True)
class Spread:
    """Median, quartiles and range of a sample."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.median:.1f} [IQR {self.q1:.1f}-{self.q3:.1f}; {self.low:.1f}-{self.high:.1f}; n={self.n}]"


def spread(values: list[float]) -> Spread:
    """The :class:`Spread` of ``values`` (quartiles by the inclusive method).

    Raises
    ------
    ValueError
        On an empty sample.
    """
    if not values:
        raise ValueError("no values to summarise")
    ordered = sorted(values)
    if len(ordered) == 1:
        q1 = q3 = ordered[0]
    else:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Spread(statistics.median(ordered), q1, q3, ordered[0], ordered[-1], len(ordered))


@dataclass(frozen=True)
class BatchProfile:
    """Warm invocations of one batch size at one memory size (local: the measuring size)."""

    batch_size: int
    memory_mb: int
    duration: Spread
    cpu: Spread | None
    off_cpu: Spread | None
    max_memory_mb: int
    payload_bytes: int
    text_chars_max: int | None
    errors: int


@dataclass(frozen=True)
class InitProfile:
    """Cold starts: init duration, and (local) its CPU and off-CPU parts."""

    memory_mb: int
    init: Spread
    cpu: Spread | None
    off_cpu: Spread | None
    max_memory_mb: int


def batch_profiles(rows: list[Measurement], kind: str = "warm") -> dict[tuple[int, int], BatchProfile]:
    """Profiles keyed by ``(memory_mb, batch_size)`` from the error-free rows of ``kind``."""
    groups: dict[tuple[int, int], list[Measurement]] = defaultdict(list)
    errors: dict[tuple[int, int], int] = defaultdict(int)
    for row in rows:
        if row.kind != kind:
            continue
        key = (row.memory_mb, row.batch_size)
        if row.error:
            errors[key] += 1
        else:
            groups[key].append(row)
    profiles = {}
    for key, group in sorted(groups.items()):
        cpu = [r.cpu_ms for r in group if r.cpu_ms is not None]
        off = [r.off_cpu_ms for r in group if r.off_cpu_ms is not None]
        profiles[key] = BatchProfile(
            batch_size=key[1],
            memory_mb=key[0],
            duration=spread([r.duration_ms for r in group]),
            cpu=spread(cpu) if cpu else None,
            off_cpu=spread(off) if off else None,
            max_memory_mb=max(r.max_memory_mb for r in group),
            payload_bytes=group[0].payload_bytes,
            text_chars_max=group[0].text_chars_max,
            errors=errors[key],
        )
    return profiles


def init_profiles(rows: list[Measurement]) -> dict[int, InitProfile]:
    """Cold-start profiles keyed by memory size, from error-free ``cold`` rows."""
    groups: dict[int, list[tuple[float, Measurement]]] = defaultdict(list)  # memory -> (init_ms, row)
    for row in rows:
        if row.kind == "cold" and not row.error and row.init_ms is not None:
            groups[row.memory_mb].append((row.init_ms, row))
    profiles = {}
    for memory, group in sorted(groups.items()):
        cpu = [r.init_cpu_ms for _, r in group if r.init_cpu_ms is not None]
        off = [
            max(0.0, init - r.init_cpu_ms - (r.runq_wait_ms or 0.0)) for init, r in group if r.init_cpu_ms is not None
        ]
        profiles[memory] = InitProfile(
            memory_mb=memory,
            init=spread([init for init, _ in group]),
            cpu=spread(cpu) if cpu else None,
            off_cpu=spread(off) if off else None,
            max_memory_mb=max(r.max_memory_mb for _, r in group),
        )
    return profiles
