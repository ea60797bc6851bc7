"""The whole experiment, as ``make cost-experiment``, the CLI and the notebook run it.

:func:`run_experiment` measures (locally or on AWS), projects, prices, recommends and
writes the outputs (:mod:`experiments.cost.report`, :mod:`experiments.cost.plots`) into one folder.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from experiments.cost.measurement import (
    BatchProfile,
    InitProfile,
    Measurement,
    batch_profiles,
    init_profiles,
    read_measurements,
)
from experiments.cost.options import Choice, Headline, OptionCost, compare_options, headline
from experiments.cost.project import (
    FULL_VCPU_MB,
    CheckRow,
    Estimate,
    check_rows,
    project_duration,
    project_estimates,
)
from experiments.cost.quota import DEFAULT_PERIOD_US, QuotaUnavailableError
from experiments.cost.recommend import (
    BreakEven,
    ClassicComparison,
    CostRow,
    LatencyTarget,
    break_evens,
    cheapest_per_batch,
    classic_comparison,
    cost_rows,
    recommend,
)
from experiments.cost.workload import Workload, make_workload, max_records_that_fit, text_pool
from pricing.prices import ARCHITECTURES, CLASSIC, DAYS_PER_MONTH, INGEST_RECORDS

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "build" / "cost"


@dataclass
class ExperimentConfig:
    """Every knob of the experiment (the CLI's options)."""

    target: str = "local"
    batch_sizes: list[int] = field(default_factory=lambda: [1, 10, 100, 1000, 10000])
    memory_sizes: list[int] = field(default_factory=lambda: [128, 256, 512, 1024, 1769, 3008])
    architectures: list[str] = field(default_factory=lambda: list(ARCHITECTURES))
    repeat: int = 20
    cold_starts: int = 3
    cold_start_rate: float = 0.01
    latency: LatencyTarget = field(default_factory=lambda: LatencyTarget(1000.0, "batch"))
    records: int = INGEST_RECORDS
    memory_headroom: float = 0.1
    free_tier: bool = False
    ingests_per_day: float = 100.0
    quota_check: bool = True
    check_repeat: int = 5
    quota_period_ms: float = DEFAULT_PERIOD_US / 1000
    check_max_ms: float = 10_000.0
    function_name: str | None = None
    out: Path = DEFAULT_OUT
    progress: bool = True
    #: A SnapStart restore's duration (ms), e.g. the local twin's measurement; None: the documented assumption.
    restore_ms: float | None = None
    #: Provisioned environments priced for the provisioned-concurrency option (shards x ParallelizationFactor).
    provisioned_environments: int = 1

    @classmethod
    def small(cls, **overrides: object) -> ExperimentConfig:
        """A configuration that runs in well under a minute (the notebook test's)."""
        small = cls(batch_sizes=[1, 10, 100], memory_sizes=[128, 1024], repeat=2, cold_starts=1, check_repeat=2)
        # Field names and types are checked by the dataclass at run time: mypy can't match **object to fields.
        return replace(small, **overrides)  # type: ignore[arg-type]

    @property
    def all_memory_sizes(self) -> list[int]:
        """The memory sizes asked for, plus the classic study's 192 MB (for the comparison)."""
        return sorted(set(self.memory_sizes) | {CLASSIC.memory_mb})

    def validate(self) -> None:
        if self.target not in ("local", "aws"):
            raise ValueError(f"target {self.target!r}: use local or aws")
        if not self.batch_sizes or not all(1 <= b <= 10_000 for b in self.batch_sizes):
            raise ValueError(f"batch sizes {self.batch_sizes}: each must be 1-10,000 (Kinesis ESM limit)")
        if not all(128 <= m <= 10_240 for m in self.memory_sizes):
            raise ValueError(f"memory sizes {self.memory_sizes}: each must be 128-10,240 MB")
        if unknown := set(self.architectures) - set(ARCHITECTURES):
            raise ValueError(f"architectures {sorted(unknown)}: use {', '.join(ARCHITECTURES)}")
        if self.repeat < 1 or self.cold_starts < 0 or not 0 <= self.cold_start_rate <= 1:
            raise ValueError("repeat >= 1, cold starts >= 0 and a cold-start rate within 0..1, please")
        if not 0 <= self.memory_headroom < 1:
            raise ValueError(f"memory headroom {self.memory_headroom}: a share within 0..1")
        if (self.restore_ms is not None and self.restore_ms < 0) or self.provisioned_environments < 1:
            raise ValueError("restore ms >= 0 and provisioned environments >= 1, please")


@dataclass
class Results:
    """Everything the experiment measured and concluded."""

    config: ExperimentConfig
    measurements: list[Measurement]
    measured_architecture: str
    workloads: list[Workload]
    max_records_fit: int
    profiles: dict[tuple[int, int], BatchProfile]
    init: dict[int, InitProfile]
    estimates: list[Estimate]
    costs: list[CostRow]
    warm_costs: list[CostRow]
    recommended: CostRow | None
    cheapest: CostRow | None
    checks: list[CheckRow]
    check_note: str
    break_evens: list[BreakEven]
    classic: list[ClassicComparison]
    machine: dict[str, str]
    files: dict[str, Path] = field(default_factory=dict)
    #: Every serving option priced (:mod:`experiments.cost.options`), the recommendation among them,
    #: and the headline figure at 192 MB / batch 100 with and without SnapStart.
    options: list[OptionCost] = field(default_factory=list)
    choice: Choice | None = None
    headline: Headline | None = None


def _machine(started: float) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "cpu": f"{cpu} ({os.cpu_count()} logical CPUs)",
        "load average (1, 5, 15 min) at the end": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "elapsed": f"{time.time() - started:.0f} s",
    }


def _measure_local(
    cfg: ExperimentConfig, one: Workload, works: list[Workload], below: list[int], tick: Callable[[str], None]
) -> tuple[list[Measurement], str]:
    """Cold starts, warm invocations per batch size, then the quota check at the ``below`` memory sizes."""
    from experiments.cost.measure_local import LocalMeasurer

    measurer = LocalMeasurer()
    try:
        rows = measurer.cold_starts(one, cfg.cold_starts, tick)
        rows += measurer.warm(one, works, cfg.repeat, tick, cold_index=cfg.cold_starts)
        if not cfg.quota_check:
            return rows, "not run (switched off)"
        if not below:
            return rows, f"not needed: no memory size below {FULL_VCPU_MB:,} MB"
        period_us = round(cfg.quota_period_ms * 1000)
        try:
            checks = measurer.quota_check(
                one, works, below, rows, cfg.check_repeat, tick, period_us=period_us, max_ms=cfg.check_max_ms
            )
        except QuotaUnavailableError as exc:
            return rows, f"not run: no CPU quota mechanism available here ({exc})"
        return rows + checks, f"cgroup CFS quota, period {cfg.quota_period_ms:g} ms"
    finally:
        measurer.close()


def measure(
    cfg: ExperimentConfig, one: Workload, works: list[Workload], lam: Any = None
) -> tuple[list[Measurement], str, str]:
    """Run the measurements of ``cfg.target``, with a progress bar.

    Returns
    -------
    rows : list of Measurement
    architecture : str
        The measured one (this machine's, or the deployed function's).
    check_note : str
        What became of the quota check.
    """
    memory = cfg.all_memory_sizes
    below = [m for m in memory if m < FULL_VCPU_MB] if cfg.quota_check else []
    if cfg.target == "local":
        total = cfg.cold_starts + len(works) * (cfg.repeat + 2) + len(below) * len(works)
    else:
        total = len(memory) * (1 + len(works))
    bar = tqdm(total=total, desc=f"cost experiment ({cfg.target})", unit="step", disable=not cfg.progress)

    def tick(label: str) -> None:
        bar.set_postfix_str(label, refresh=False)
        bar.update(1)

    try:
        if cfg.target == "local":
            from experiments.cost.measure_local import ARCHITECTURE

            rows, note = _measure_local(cfg, one, works, below, tick)
            return rows, ARCHITECTURE, note
        from experiments.cost.aws import lambda_client, measure_aws
        from release.settings import load_settings

        name = cfg.function_name or load_settings().function.name
        rows, arch = measure_aws(name, one, works, memory, cfg.repeat, tick, lam=lam or lambda_client())
        return rows, arch, "not applicable: durations measured on AWS at each memory size"
    finally:
        bar.close()


def analyse(
    cfg: ExperimentConfig,
    rows: list[Measurement],
    arch: str,
    works: list[Workload],
    check_note: str = "",
    max_records_fit: int = 0,
    started: float | None = None,
) -> Results:
    """Summarise, project (local) or read (aws) the durations, price, recommend, compare."""
    profiles, inits = batch_profiles(rows), init_profiles(rows)
    if cfg.target == "local":
        init = next(iter(inits.values()), None)
        estimates = project_estimates(profiles, init, cfg.all_memory_sizes, cfg.architectures, arch)
        checks = check_rows(rows, profiles)
    else:
        from experiments.cost.aws import aws_estimates

        estimates, checks = aws_estimates(rows, profiles, inits, cfg.architectures, arch), []
    per_month = cfg.ingests_per_day * DAYS_PER_MONTH
    costs = cost_rows(estimates, cfg.cold_start_rate, cfg.records, cfg.free_tier, per_month)
    warm_costs = cost_rows(estimates, 0.0, cfg.records, cfg.free_tier, per_month)
    main_arch = arch if arch in cfg.architectures else cfg.architectures[0]
    best = list(cheapest_per_batch(costs, main_arch, cfg.memory_headroom).values())
    recommended = recommend(costs, cfg.latency, cfg.memory_headroom)
    if recommended is not None and recommended not in best:
        best.append(recommended)
    payload = {w.batch_size: w.payload_bytes for w in works}
    full_vcpu = {
        batch: project_duration(p.cpu.median, p.off_cpu.median, FULL_VCPU_MB)
        for (_, batch), p in profiles.items()
        if cfg.target == "local" and p.cpu is not None and p.off_cpu is not None
    }
    options, choice = compare_options(
        estimates,
        payload,
        cfg.cold_start_rate,
        cfg.records,
        per_month,
        cfg.latency,
        cfg.memory_headroom,
        (main_arch, *[a for a in cfg.architectures if a != main_arch]),
        cfg.restore_ms,
        cfg.provisioned_environments,
        full_vcpu,
    )
    return Results(
        config=cfg,
        measurements=rows,
        measured_architecture=arch,
        workloads=works,
        max_records_fit=max_records_fit,
        profiles=profiles,
        init=inits,
        estimates=estimates,
        costs=costs,
        warm_costs=warm_costs,
        recommended=recommended,
        cheapest=recommend(costs, None, cfg.memory_headroom),
        checks=checks,
        check_note=check_note,
        break_evens=break_evens(best),
        classic=classic_comparison(costs, warm_costs, main_arch),
        machine=_machine(started if started is not None else time.time()),
        options=options,
        choice=choice,
        headline=headline(estimates, cfg.cold_start_rate, cfg.records, per_month, cfg.restore_ms, main_arch),
    )


def run_experiment(cfg: ExperimentConfig, write: bool = True, lam: Any = None, from_csv: Path | None = None) -> Results:
    """Measure, project, price, recommend; write the CSVs, the report and the plots to ``cfg.out``.

    ``lam`` is the Lambda client for ``target="aws"`` (default: a new boto3 client).
    ``from_csv`` re-prices the rows of an earlier ``measurements.csv`` instead of measuring
    (its target and batch sizes replace those of a copy of ``cfg``; ``cfg`` itself is left as it is).
    """
    cfg.validate()
    started = time.time()
    pool = text_pool()
    if from_csv is not None:
        rows = read_measurements(Path(from_csv))
        if not rows:
            raise ValueError(f"{from_csv}: no measurements")
        cfg = replace(cfg, target=rows[0].target, batch_sizes=sorted({r.batch_size for r in rows if r.kind == "warm"}))
        arch = rows[0].architecture
        periods = sorted({r.quota_period_ms for r in rows if r.kind == "quota" and r.quota_period_ms})
        note = (f"cgroup CFS quota, period {periods[0]:g} ms; " if periods else "no quota runs; ") + (
            f"re-priced from {from_csv}"
        )
        works = [make_workload(b, pool) for b in cfg.batch_sizes]
    else:
        works = [make_workload(b, pool) for b in sorted(set(cfg.batch_sizes))]
        rows, arch, note = measure(cfg, make_workload(1, pool), works, lam)
    results = analyse(cfg, rows, arch, works, note, max_records_that_fit(pool), started)
    if from_csv is not None:
        measured = time.gmtime(Path(from_csv).stat().st_mtime)
        results.machine = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", measured) + f" ({from_csv})"} | {
            f"{k} (re-pricing)" if k in ("date", "elapsed") else k: v for k, v in results.machine.items()
        }
    if write:
        from experiments.cost.report import write_outputs

        results.files = write_outputs(results, cfg.out)
    return results
