"""Write the experiment's outputs into one folder.

``measurements.csv``
    every measured invocation (:class:`tools.cost.measurement.Measurement`).
``estimates.csv``
    every configuration (architecture x memory x batch size): duration, init, billed ms,
    memory fit, cost per invocation and per ingest (with and without cold starts).
``quota_check.csv``
    the projection against runs under a real CPU quota (when one could be set).
``report.md``
    the tables, the stated model, the cited prices, the notes, and the plots.
``cost_per_ingest.png``, ``duration.png``, ``break_even.png``
    :mod:`tools.cost.plots`.
"""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from tools.cost import notes, tables
from tools.cost.measurement import Measurement
from tools.cost.pricing import CLASSIC, DAYS_PER_MONTH, TABLE_DATE, price_table_rows

if TYPE_CHECKING:
    from tools.cost.experiment import Results
    from tools.cost.recommend import ClassicComparison

TARGET_RATIO = 20.0


def write_csvs(results: Results, out: Path) -> dict[str, Path]:
    """``measurements.csv``, ``estimates.csv`` and ``quota_check.csv``."""
    files = {"measurements": out / "measurements.csv", "estimates": out / "estimates.csv"}
    with files["measurements"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=Measurement.columns())
        writer.writeheader()
        writer.writerows(m.as_row() for m in results.measurements)
    warm = {(r.estimate.architecture, r.estimate.memory_mb, r.estimate.batch_size): r for r in results.warm_costs}
    with files["estimates"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "architecture",
                "memory_mb",
                "batch_size",
                "source",
                "duration_ms",
                "init_ms",
                "expected_billed_ms",
                "max_memory_mb",
                "fits",
                "cold_start_rate",
                "cost_per_invocation_usd",
                "cost_per_ingest_usd",
                "cost_per_ingest_warm_only_usd",
                "records_per_ingest",
                "text_chars_max",
            ]
        )
        for row in results.costs:
            est = row.estimate
            writer.writerow(
                [
                    est.architecture,
                    est.memory_mb,
                    est.batch_size,
                    est.source,
                    f"{est.duration_ms:.3f}",
                    f"{est.init_ms:.3f}",
                    f"{row.billed_ms:.3f}",
                    est.max_memory_mb,
                    est.fits,
                    row.cold_start_rate,
                    f"{row.cost_per_invocation:.10g}",
                    f"{row.cost_per_ingest:.10g}",
                    f"{warm[(est.architecture, est.memory_mb, est.batch_size)].cost_per_ingest:.10g}",
                    row.records,
                    est.text_chars_max if est.text_chars_max is not None else "",
                ]
            )
    if results.checks:
        files["quota_check"] = out / "quota_check.csv"
        with files["quota_check"].open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*asdict(results.checks[0]), "ratio"])
            writer.writeheader()
            writer.writerows({**asdict(c), "ratio": c.ratio} for c in results.checks)
    return files


def _verdict(results: Results, c: ClassicComparison) -> str:
    """The headline sentence: our ratio at batch size 100, and the cold-start rate it allows."""
    rate = results.config.cold_start_rate
    met = "meets" if c.ratio >= TARGET_RATIO else "does NOT meet"
    warm_ratio = c.classic_cost / c.ours_warm.cost_per_ingest
    text = (
        f"At batch size 100 and 192 MB ours is **{c.ratio:,.1f}x cheaper** than the classic "
        f"{tables.usd(c.classic_cost)} per ingest ({tables.usd(c.ours.cost_per_ingest)} with {rate:.0%} cold "
        f"starts; {warm_ratio:,.1f}x, {tables.usd(c.ours_warm.cost_per_ingest)}, warm only): it {met} the target "
        f"of at least {TARGET_RATIO:.0f}x."
    )
    budget = c.classic_cost / TARGET_RATIO
    slope = (c.ours.cost_per_ingest - c.ours_warm.cost_per_ingest) / rate if rate > 0 else 0.0
    if slope > 0 and c.ours_warm.cost_per_ingest < budget:
        allowed = (budget - c.ours_warm.cost_per_ingest) / slope
        text += (
            f" The target holds up to a cold-start rate of {allowed:.2%}: each cold start bills ~"
            f"{c.ours.estimate.init_ms / 1000:,.1f} s of init at 192 MB (projected), so cold starts, not batches, "
            "decide this comparison."
        )
    return text


def write_markdown(results: Results, out: Path, plots: dict[str, Path]) -> Path:
    """``report.md``."""
    cfg = results.config
    ours100 = next((c for c in results.classic if c.batch_size == 100), None)
    verdict = _verdict(results, ours100) if ours100 else ""
    sections = [
        f"# Batch-size cost experiment ({cfg.target})",
        "",
        f"{results.machine.get('measured', results.machine.get('date', ''))} · target `{cfg.target}` · measured architecture {results.measured_architecture} · "
        f"batch sizes {', '.join(map(str, sorted(set(cfg.batch_sizes))))} · memory sizes "
        f"{', '.join(map(str, cfg.all_memory_sizes))} MB · {cfg.repeat} warm repetitions · "
        f"{cfg.records:,}-record ingests · cold-start rate {cfg.cold_start_rate:.1%} · prices of {TABLE_DATE} (below)",
        "",
        f"## Against the classic study ({CLASSIC.year}, {CLASSIC.memory_mb} MB)",
        "",
        "The classic function loaded the model in every invocation (~3.8 s at 192 MB, billed in 100 ms "
        "steps then); ours loads it once per execution environment and predicts each batch in one call, "
        "billed in 1 ms steps.",
        "",
        tables.classic_table(results),
        "",
        verdict,
        "",
        f"The classic figures recomputed from 3.8 s at 192 MB in 100 ms steps with today's x86_64 prices: "
        f"{tables.classic_recomputed()} (the study's ~3.8 s was presumably billed as 3.9 s).",
        "",
        "## Recommendation",
        "",
        *notes.recommendation_lines(results),
        "",
        f"## Cost per {cfg.records:,}-record ingest",
        "",
        f"✗ = the measured Max Memory Used does not fit that memory size; ⚠ = it fits with less than "
        f"{cfg.memory_headroom:.0%} to spare. Neither is recommended.",
        "",
    ]
    for arch in cfg.architectures:
        source = (
            "measured"
            if arch == results.measured_architecture
            else "assumed as fast as " + results.measured_architecture
        )
        sections += [f"### {arch} ({source})", "", tables.cost_grid(results, arch), ""]
    sections += [f"![cost per ingest]({plots['cost_per_ingest'].name})", ""]
    sections += [
        "## Break-even against an always-on SageMaker endpoint",
        "",
        f"Ingests per day ({DAYS_PER_MONTH:.2f} days a month) above which Lambda costs more a month than one "
        "endpoint instance, for the cheapest fitting memory size at each batch size "
        f"({results.measured_architecture}) and the recommended configuration.",
        "",
        tables.break_even_table(results),
        "",
        f"The classic study's own break-even against its ~${CLASSIC.endpoint_per_month:.0f}/month "
        f"{CLASSIC.endpoint_instance}: {tables.classic_break_even()}.",
        "",
        f"![break-even]({plots['break_even'].name})",
        "",
        f"## Duration by batch size and memory size ({tables.est_source(results)}, ms)",
        "",
        tables.duration_grid(results, results.measured_architecture),
        "",
        f"![duration]({plots['duration'].name})",
        "",
        "## Measurements",
        "",
        tables.measured_table(results),
        "",
        "Cold starts:",
        "",
        tables.init_table(results),
        "",
    ]
    if cfg.target == "local":
        sections += ["### The projection against a real CPU quota", "", f"Quota check: {results.check_note}.", ""]
        if results.checks:
            sections += [*notes.check_lines(results), "", tables.check_table(results), ""]
    sections += [
        "## Prices (us-east-1)",
        "",
        tables.markdown(["item", "price", "unit", "source"], [list(r.values()) for r in price_table_rows()], "llll"),
        "",
        "## Notes",
        "",
        *notes.note_lines(results),
        "",
        "## Machine and files",
        "",
        *[f"- {k}: {v}" for k, v in results.machine.items()],
        "- files: " + ", ".join(f"`{p.name}`" for p in [*results.files.values(), *plots.values()]),
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(sections), encoding="utf-8")
    return path


def write_outputs(results: Results, out: Path) -> dict[str, Path]:
    """Write every output into ``out``; returns their paths by name."""
    from tools.cost.plots import write_plots

    out.mkdir(parents=True, exist_ok=True)
    files = write_csvs(results, out)
    results.files = files
    plots = write_plots(results, out)
    files = {**files, **plots}
    files["report"] = write_markdown(results, out, plots)
    return files
