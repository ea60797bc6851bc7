"""Measure the function on the local Lambda runtime, from the published zips.

Three kinds of run, each in fresh execution environments of
:class:`localtwin.runtime.pool.LocalLambda` (the function zip, the dependencies
layer, the model layer; no results destination, so the predictions come back in the
response):

cold starts
    ``cold_starts`` extra fresh environments, plus one per batch size, each first invoked
    on a batch of one record: Init Duration, init CPU, peak memory.
warm invocations
    per batch size, a fresh environment (its peak memory is then that batch size's) and
    one warm-up; then ``repeat`` rounds of one timed invocation per batch size,
    interleaved so that bursts of load on this shared machine hit every batch size alike:
    Duration, CPU time and run-queue wait of the worker (schedstat, ns), Max Memory Used.
quota check
    one warm environment whose worker is moved into a cgroup with a CPU quota of
    ``m / 1769`` for each memory size ``m`` below 1,769 MB (:mod:`experiments.cost.quota`),
    ``check_repeat`` timed invocations per batch size whose projected duration stays
    under ``check_max_ms``.

The environments get the largest memory size (10,240 MB), so none is killed for memory:
what a smaller size would need is read from Max Memory Used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from experiments.cost.measurement import Measurement, batch_profiles, invocation_error
from experiments.cost.project import FULL_VCPU_MB, project_duration
from experiments.cost.quota import DEFAULT_PERIOD_US, CpuQuota
from experiments.cost.workload import Workload
from localtwin.invoke import DEFAULT_FUNCTION, INVOKE_LAYERS
from localtwin.runtime.pool import LocalLambda
from localtwin.runtime.report import InvokeResult

MEASURING_MEMORY_MB = 10240
ARCHITECTURE = "x86_64" if os.uname().machine in ("x86_64", "AMD64") else "arm64"

Progress = Callable[[str], None]


def worker_pids() -> list[int]:
    """Live local Lambda workers started by this process (children running awslambdaric)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == me and b"awslambdaric" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


Schedstat = dict[int, tuple[int, int]]


def schedstat(pid: int) -> Schedstat:
    """``{thread id: (CPU ns, run-queue wait ns)}`` of the live threads of ``pid``, so far."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (task / "schedstat").read_text().split()
            threads[int(task.name)] = (int(fields[0]), int(fields[1]))
    return threads


def schedstat_ms_since(pid: int, before: Schedstat) -> tuple[float, float]:
    """``(CPU ms, run-queue wait ms)`` of ``pid``'s threads since ``before`` (``{}``: since they started).

    Counted per thread: the worker starts and ends short-lived threads between and during
    invocations, and the counters of a thread that has ended are gone (summing all threads
    before and after would subtract them). A thread that ended in between is missing, with
    whatever it ran since ``before``.
    """
    cpu = wait = 0
    for tid, (cpu_ns, wait_ns) in schedstat(pid).items():
        cpu_before, wait_before = before.get(tid, (0, 0))
        cpu, wait = cpu + cpu_ns - cpu_before, wait + wait_ns - wait_before
    return cpu / 1e6, wait / 1e6


class LocalMeasurer:
    """Runs the measurements; one instance per experiment (it extracts the zips once).

    Parameters
    ----------
    function_zip, layer_zips : Path
        The built zips (``make function-zip model-layer deps-layer``).
    workdir : Path, optional
        Where the zips are extracted; a temporary directory (removed by :meth:`close`) by default.
    """

    def __init__(
        self, function_zip: Path = DEFAULT_FUNCTION, layer_zips: list[Path] | None = None, workdir: Path | None = None
    ) -> None:
        self.function_zip = Path(function_zip).resolve()
        self.layer_zips = [Path(p).resolve() for p in (layer_zips or INVOKE_LAYERS)]
        self._own = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="cost-lambda-")) if workdir is None else Path(workdir).resolve()

    def close(self) -> None:
        if self._own:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _lambda(self) -> LocalLambda:
        return LocalLambda(
            self.function_zip,
            self.layer_zips,
            memory_mb=MEASURING_MEMORY_MB,
            timeout_s=900,
            max_environments=1,
            log=lambda line: None,
            workdir=self.workdir,
        )

    def _row(self, kind: str, work: Workload, result: InvokeResult, repetition: int, **extra: object) -> Measurement:
        return Measurement.from_report(
            result.report,
            work,
            target="local",
            kind=kind,
            architecture=ARCHITECTURE,
            repetition=repetition,
            cpu_tick_ms=result.report.cpu_ms,
            error=invocation_error(result.error["errorType"] if result.error else None, result.payload),
            load_1m=os.getloadavg()[0],
            **extra,
        )

    def _start(self, fn: LocalLambda, one: Workload, repetition: int) -> tuple[Measurement, int | None]:
        """Cold-start a fresh environment on a one-record batch; return its row and worker pid."""
        before = set(worker_pids())
        result = fn.invoke(one.event)
        started = set(worker_pids()) - before
        pid = max(started) if started else None
        total_cpu, total_wait = schedstat_ms_since(pid, {}) if pid else (None, None)
        init_cpu = None if total_cpu is None else max(0.0, total_cpu - result.report.cpu_ms)
        row = self._row("cold", one, result, repetition, init_cpu_ms=init_cpu, runq_wait_ms=total_wait)
        return row, pid

    def _timed(
        self, fn: LocalLambda, pid: int | None, work: Workload
    ) -> tuple[InvokeResult, float | None, float | None]:
        if pid is None:
            return fn.invoke(work.event), None, None
        before = schedstat(pid)
        result = fn.invoke(work.event)
        return result, *schedstat_ms_since(pid, before)

    def cold_starts(self, one: Workload, count: int, progress: Progress) -> list[Measurement]:
        """``count`` cold starts, each in a fresh environment, on a one-record batch."""
        rows = []
        for i in range(count):
            with self._lambda() as fn:
                rows.append(self._start(fn, one, i)[0])
            progress("cold start")
        return rows

    def warm(
        self, one: Workload, works: list[Workload], repeat: int, progress: Progress, cold_index: int = 0
    ) -> list[Measurement]:
        """One fresh environment per batch size (its cold start is row ``cold_index + i``, then a
        warm-up), all kept alive; then ``repeat`` rounds that time one invocation of each batch
        size, in alternating order, so that the shared machine's load falls on all of them alike.

        The environments share the extracted tree: each LocalLambda is created only after the
        previous one has found it extracted (nothing is extracted again), and workers only read it.
        """
        rows: list[Measurement] = []
        with contextlib.ExitStack() as stack:
            envs: list[tuple[LocalLambda, int | None, Workload]] = []
            for i, work in enumerate(works):
                fn = stack.enter_context(self._lambda())
                cold, pid = self._start(fn, one, cold_index + i)
                rows.append(cold)
                progress("cold start")
                fn.invoke(work.event)  # warm-up: first-call paths, caches
                progress(f"warm-up, batch {work.batch_size}")
                envs.append((fn, pid, work))
            for i in range(repeat):
                for fn, pid, work in envs if i % 2 == 0 else envs[::-1]:
                    result, cpu, wait = self._timed(fn, pid, work)
                    rows.append(self._row("warm", work, result, i, cpu_ms=cpu, runq_wait_ms=wait))
                    progress(f"batch {work.batch_size}")
        return rows

    def quota_check(
        self,
        one: Workload,
        workloads: list[Workload],
        memory_sizes: list[int],
        warm_rows: list[Measurement],
        repeat: int,
        progress: Progress,
        period_us: int = DEFAULT_PERIOD_US,
        max_ms: float = 10_000,
    ) -> list[Measurement]:
        """Warm invocations under a CPU quota of ``m / 1769`` for each ``m`` < 1,769 MB.

        Batch sizes whose projected duration exceeds ``max_ms`` at ``m`` are skipped.
        Raises :class:`experiments.cost.quota.QuotaUnavailableError` where no quota can be set.
        """
        profiles = {batch: p for (_, batch), p in batch_profiles(warm_rows).items()}
        rows: list[Measurement] = []
        with CpuQuota(1.0, period_us) as quota, self._lambda() as fn:
            _, pid = self._start(fn, one, 0)
            if pid is None:
                raise RuntimeError("the local Lambda worker could not be found to move it into the cgroup")
            quota.add(pid)
            for memory in sorted(m for m in memory_sizes if m < FULL_VCPU_MB):
                quota.set_fraction(memory / FULL_VCPU_MB)
                for work in workloads:
                    profile = profiles.get(work.batch_size)
                    if profile is None or profile.cpu is None or profile.off_cpu is None:
                        continue
                    if project_duration(profile.cpu.median, profile.off_cpu.median, memory) > max_ms:
                        progress(f"quota {memory} MB, batch {work.batch_size}: skipped")
                        continue
                    fn.invoke(work.event)  # warm-up under the new quota
                    for i in range(repeat):
                        throttled = quota.throttled_ms()
                        result, cpu, wait = self._timed(fn, pid, work)
                        extra = {"memory_mb": memory, "quota_period_ms": period_us / 1000}
                        extra["throttled_ms"] = quota.throttled_ms() - throttled
                        rows.append(self._row("quota", work, result, i, cpu_ms=cpu, runq_wait_ms=wait, **extra))
                    progress(f"quota {memory} MB, batch {work.batch_size}")
        return rows
