"""Project Lambda's duration at each memory size from one local measurement.

The model (stated in the report):

* Lambda allocates CPU in proportion to memory; at 1,769 MB a function gets one full
  vCPU (docs/aws-notes.md §5). Below that it gets ``m / 1769`` of one.
* The function is single-threaded (one vectorised scikit-learn call on a sparse matrix;
  the measured CPU time never exceeds the wall time), so more than one vCPU does not
  help: above 1,769 MB the duration is flat.
* A warm invocation is ``cpu_ms`` of CPU work, stretched by the CPU share, plus
  ``off_cpu_ms`` spent waiting for something else (I/O, the Runtime API), which is not:

      duration(m) = cpu_ms * max(1, 1769 / m) + off_cpu_ms

  where ``cpu_ms`` is the median CPU time measured locally on one unthrottled CPU and
  ``off_cpu_ms = wall - cpu - run-queue wait`` (the run-queue wait is this shared
  machine's contention, see :mod:`experiments.cost.measurement`). The init of a cold start is
  projected the same way.
* arm64 is not measured here (x86_64 machine): its duration is assumed equal to
  x86_64's, so it differs only by price. Lambda's CPUs also differ from this one.

:func:`check_rows` compares the projection with warm invocations measured under a real
CPU quota of ``m / 1769`` (:mod:`experiments.cost.quota`).
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.cost.measurement import BatchProfile, InitProfile, Measurement, spread

FULL_VCPU_MB = 1769
MODEL_STATEMENT = (
    "duration(m) = cpu_ms x max(1, 1769 / m) + off_cpu_ms: CPU share proportional to memory, "
    "one full vCPU at 1,769 MB, flat above (the function is single-threaded); off_cpu_ms = "
    "wall - cpu - run-queue wait, measured unthrottled on this machine; init projected the same way; "
    "arm64 assumed as fast as x86_64"
)


def cpu_scale(memory_mb: int) -> float:
    """How much longer CPU work takes at ``memory_mb`` than on one full vCPU."""
    if memory_mb <= 0:
        raise ValueError(f"memory_mb={memory_mb} must be > 0")
    return max(1.0, FULL_VCPU_MB / memory_mb)


def project_duration(cpu_ms: float, off_cpu_ms: float, memory_mb: int) -> float:
    """``cpu_ms * max(1, 1769 / memory_mb) + off_cpu_ms``."""
    return cpu_ms * cpu_scale(memory_mb) + off_cpu_ms


@dataclass(frozen=True)
class Estimate:
    """Duration figures of one configuration, before prices.

    ``source`` is ``projected`` (local measurement + the model), ``measured`` (on AWS at
    this memory size) or ``assumed`` (another architecture's duration, priced for this one).
    """

    architecture: str
    memory_mb: int
    batch_size: int
    duration_ms: float
    init_ms: float
    max_memory_mb: int
    fits: bool
    source: str
    text_chars_max: int | None = None


def project_estimates(
    profiles: dict[tuple[int, int], BatchProfile],
    init: InitProfile | None,
    memory_sizes: list[int],
    architectures: list[str],
    measured_architecture: str = "x86_64",
) -> list[Estimate]:
    """Estimates for every architecture x memory size x measured batch size.

    Parameters
    ----------
    profiles : dict
        Local warm profiles keyed by ``(measuring memory, batch size)``; must carry CPU figures.
    init : InitProfile or None
        Local cold starts (None: init 0, e.g. when cold starts were not measured).
    memory_sizes, architectures : list
        The configurations to project.
    measured_architecture : str
        This machine's; the others are ``assumed`` equally fast.
    """
    init_cpu = init.cpu.median if init and init.cpu else (init.init.median if init else 0.0)
    init_off = init.off_cpu.median if init and init.off_cpu else 0.0
    init_memory = init.max_memory_mb if init else 0
    estimates = []
    for (_, batch), profile in sorted(profiles.items(), key=lambda item: item[0][1]):
        if profile.cpu is None or profile.off_cpu is None:
            raise ValueError(f"batch size {batch}: no CPU figures to project from")
        needed = max(profile.max_memory_mb, init_memory)
        for arch in architectures:
            for memory in memory_sizes:
                estimates.append(
                    Estimate(
                        architecture=arch,
                        memory_mb=memory,
                        batch_size=batch,
                        duration_ms=project_duration(profile.cpu.median, profile.off_cpu.median, memory),
                        init_ms=project_duration(init_cpu, init_off, memory) if init else 0.0,
                        max_memory_mb=needed,
                        fits=needed <= memory,
                        source="projected" if arch == measured_architecture else "assumed",
                        text_chars_max=profile.text_chars_max,
                    )
                )
    return estimates


@dataclass(frozen=True)
class CheckRow:
    """The projection against a run under a matching CPU quota."""

    memory_mb: int
    batch_size: int
    projected_ms: float
    measured_ms: float
    measured_q1: float
    measured_q3: float
    throttled_ms: float
    n: int
    unthrottled_cpu_ms: float = 0.0
    cpu_ms: float = 0.0
    own_projection_ms: float = 0.0

    @property
    def ratio(self) -> float:
        """measured / projected (from the unthrottled CPU time, as the cost tables are)."""
        return self.measured_ms / self.projected_ms if self.projected_ms else float("nan")

    @property
    def ratio_own(self) -> float:
        """measured / the model applied to the CPU time these very invocations used."""
        return self.measured_ms / self.own_projection_ms if self.own_projection_ms else float("nan")


def check_rows(rows: list[Measurement], profiles: dict[tuple[int, int], BatchProfile]) -> list[CheckRow]:
    """Compare ``quota`` rows with the projection from the unthrottled profiles, and with the
    model applied to the CPU time the throttled invocations themselves used (which separates
    the CPU-share mechanism from changes in the CPU time itself)."""
    by_batch = {batch: profile for (_, batch), profile in profiles.items()}
    groups: dict[tuple[int, int], list[Measurement]] = {}
    for row in rows:
        if row.kind == "quota" and not row.error:
            groups.setdefault((row.memory_mb, row.batch_size), []).append(row)
    checks = []
    for (memory, batch), group in sorted(groups.items()):
        profile = by_batch.get(batch)
        if profile is None or profile.cpu is None or profile.off_cpu is None:
            continue
        measured = spread([r.duration_ms for r in group])
        own = [project_duration(r.cpu_ms, profile.off_cpu.median, memory) for r in group if r.cpu_ms is not None]
        cpu = [r.cpu_ms for r in group if r.cpu_ms is not None]
        checks.append(
            CheckRow(
                memory_mb=memory,
                batch_size=batch,
                projected_ms=project_duration(profile.cpu.median, profile.off_cpu.median, memory),
                measured_ms=measured.median,
                measured_q1=measured.q1,
                measured_q3=measured.q3,
                throttled_ms=sum(r.throttled_ms or 0.0 for r in group) / len(group),
                n=measured.n,
                unthrottled_cpu_ms=profile.cpu.median,
                cpu_ms=spread(cpu).median if cpu else 0.0,
                own_projection_ms=spread(own).median if own else 0.0,
            )
        )
    return checks
