"""Write the experiment's outputs into one folder.

``measurements.csv``
    every measured invocation (:class:`experiments.cost.measurement.Measurement`).
``estimates.csv``
    every configuration (architecture x memory x batch size): duration, init, billed ms,
    memory fit, cost per invocation and per ingest (with and without cold starts).
``quota_check.csv``
    the projection against runs under a real CPU quota (when one could be set).
``report.md``
    the tables, the stated model, the cited prices, the notes, and the plots.
``cost_per_ingest.png``, ``duration.png``, ``break_even.png``
    :mod:`experiments.cost.plots`.
"""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from experiments.cost import tables
from experiments.cost.measurement import Measurement
from experiments.cost.options_report import section as options_section
from experiments.cost.project import MODEL_STATEMENT
from localtwin.runtime.environment import INIT_TIMEOUT_S
from pricing.prices import CLASSIC, CLASSIC_TARGET_RATIO, DAYS_PER_MONTH, TABLE_DATE

if TYPE_CHECKING:
    from experiments.cost.experiment import Results
    from experiments.cost.recommend import ClassicComparison

# ------------------------------------------------------------------------- the prose

#: The quota check "holds" when the model on the throttled runs' own CPU time is within this factor.
CHECK_TOLERANCE = 1.25


def recommendation_lines(results: Results) -> list[str]:
    cfg = results.config
    lines = []
    for title, row in (
        (f"meeting the latency target ({cfg.latency}, warm)", results.recommended),
        ("with no latency target", results.cheapest),
    ):
        if row is None:
            lines.append(f"- **Cheapest {title}:** none of the configurations measured meets it.")
            continue
        est = row.estimate
        lines.append(
            f"- **Cheapest {title}:** batch size **{est.batch_size:,}**, **{est.memory_mb:,} MB**, "
            f"**{est.architecture}**: {tables.usd(row.cost_per_ingest)} per {row.records:,}-record ingest, "
            f"{est.duration_ms:,.1f} ms per warm invocation ({row.per_record_ms:.3f} ms per record), "
            f"cold start ~{est.init_ms:,.0f} ms ({est.source})."
            + (
                f" Its texts were cut to {est.text_chars_max} characters to fit 6 MB: with full-length records "
                f"Lambda delivers at most ~{results.max_records_fit:,} per invocation, at about the same cost per record."
                if est.text_chars_max
                else ""
            )
        )
    return lines


def note_lines(results: Results) -> list[str]:
    cfg = results.config
    notes = [
        f"- **Model ({tables.est_source(results)}):** {MODEL_STATEMENT}."
        if cfg.target == "local"
        else "- **Durations** are medians measured on AWS at each memory size; the other architecture is priced "
        "with the same durations (assumed).",
        f"- **Cold starts:** {cfg.cold_start_rate:.1%} of invocations are billed their init as well "
        "(on-demand functions are billed for init since August 2025). Lambda keeps an environment warm while "
        "batches keep arriving; a shard with a batch every few seconds sees few cold starts.",
        (
            f"- **Free tier:** the tables spread the free tier over {cfg.ingests_per_day:g} ingests a day "
            "(1M requests + 400,000 GB-s a month, per account); the break-even table shows it off and on."
            if cfg.free_tier
            else "- **Free tier:** the tables are marginal prices (free tier used up, e.g. by other functions); "
            "the break-even table shows it off and on (1M requests + 400,000 GB-s a month, per account)."
        ),
        "- **Not included:** Kinesis / DynamoDB Streams charges (the same at every batch size), CloudWatch "
        "Logs ingestion, the results sink's writes, data transfer; SageMaker's data processing charges.",
        f"- **Payload:** Lambda accepts at most 6 MB per invocation. At this data set's lengths about "
        f"{results.max_records_fit:,} Kinesis records fit; "
        + (
            ", ".join(
                f"batch {w.batch_size:,} was sent with texts cut to {w.text_chars_max} characters "
                f"(mean {w.mean_text_chars:.0f}) to fit ({w.payload_bytes / 1e6:.2f} MB), and Lambda's event "
                f"source mapping would deliver fewer records per batch"
                for w in results.workloads
                if w.text_chars_max
            )
            or "every batch fitted with uncut texts"
        )
        + ".",
        "- **Endpoint capacity:** an always-on endpoint is flat-priced only while one instance keeps up; past "
        "that it needs more instances (the break-even's records/s column says what that volume means).",
    ]
    slow_init = sorted(
        {e.memory_mb for e in results.estimates if e.init_ms > INIT_TIMEOUT_S * 1000 and e.source != "assumed"}
    )
    if slow_init:
        notes.append(
            f"- **Init over 10 s:** the init is projected past Lambda's 10 s init phase at "
            f"{', '.join(f'{m:,}' for m in slow_init)} MB. Lambda would then run init again inside the first "
            "invocation, under the function's timeout. Init is projected with the same CPU share as the handler; "
            "Lambda has been reported to give init more CPU than that at small memory sizes (unverified), so "
            "these init figures, and the cold-start share of the costs, are pessimistic."
        )
    rates = [
        (p.batch_size, 1000.0 * p.batch_size / p.cpu.median)
        for p in results.profiles.values()
        if p.cpu and p.cpu.median > 0
    ]
    if rates:
        batch, rate = max(rates)
        notes.append(
            f"- **Throughput:** one full vCPU scores about {rate:,.0f} records/s in batches of {batch:,} "
            "(CPU time measured here): the ceiling of one endpoint vCPU at that batching."
        )
    if cfg.target == "local":
        notes.append(
            "- **Local figures** are one x86_64 machine's CPU, not Lambda's; `make cost-experiment TARGET=aws` "
            "measures the deployed function. No results destination is set locally (the predictions come back "
            "in the response), so no sink writes are timed."
        )
    return notes


def check_lines(results: Results) -> list[str]:
    """What the quota check says, from its long (throttled) points."""
    long = [c for c in results.checks if c.throttled_ms > 0 and c.projected_ms >= 200]
    lines = [
        "A warm worker moved into a cgroup allowed `memory / 1769` of one CPU per CFS period. Below one "
        "period's quota an invocation runs at full speed (CFS lets it spend the quota in a burst), so the "
        "proportional model overestimates short invocations; it is meant for the long ones that dominate "
        "cost. Lambda's own period is not documented (unverified)."
    ]
    if long:
        own = sorted(c.ratio_own for c in long)
        tables_ratio = sorted(c.ratio for c in long)
        drift = sorted(c.cpu_ms / c.unthrottled_cpu_ms for c in long if c.unthrottled_cpu_ms)
        holds = (
            "the CPU-share mechanism holds"
            if own[0] >= 1 / CHECK_TOLERANCE and own[-1] <= CHECK_TOLERANCE
            else f"more than {CHECK_TOLERANCE:g}x off at some points: the CPU-share model does not hold here"
        )
        text = (
            f"On the {len(long)} throttled points projected at 200 ms or more, the model applied to the CPU time "
            f"the throttled invocations themselves used is within {own[0]:.2f}-{own[-1]:.2f}x of the measured "
            f"duration: {holds}. Against the projection the tables use (the unthrottled median CPU time) the "
            f"ratio is {tables_ratio[0]:.2f}-{tables_ratio[-1]:.2f}x"
        )
        if drift:
            text += (
                f"; the CPU time of the same work was {drift[0]:.2f}-{drift[-1]:.2f}x the unthrottled figure "
                "(not separated here: caches refilled after every throttled period, other tenants of this "
                "shared machine, see the `load_1m` column of the CSV)"
            )
        lines += ["", text + ". That spread is the projection's uncertainty."]
    return lines


# ------------------------------------------------------------------------ the files


def write_csvs(results: Results, out: Path) -> dict[str, Path]:
    """``measurements.csv``, ``estimates.csv`` and ``quota_check.csv``."""
    files = {"measurements": out / "measurements.csv", "estimates": out / "estimates.csv"}
    with files["measurements"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=Measurement.columns())
        writer.writeheader()
        writer.writerows(m.as_row() for m in results.measurements)
    warm = {(r.estimate.architecture, r.estimate.memory_mb, r.estimate.batch_size): r for r in results.warm_costs}
    with files["estimates"].open("w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(
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
            rows.writerow(
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
    met = "meets" if c.ratio >= CLASSIC_TARGET_RATIO else "does NOT meet"
    warm_ratio = c.classic_cost / c.ours_warm.cost_per_ingest
    text = (
        f"At batch size 100 and 192 MB ours is **{c.ratio:,.1f}x cheaper** than the classic "
        f"{tables.usd(c.classic_cost)} per ingest ({tables.usd(c.ours.cost_per_ingest)} with {rate:.0%} cold "
        f"starts; {warm_ratio:,.1f}x, {tables.usd(c.ours_warm.cost_per_ingest)}, warm only): it {met} the target "
        f"of at least {CLASSIC_TARGET_RATIO:.0f}x."
    )
    budget = c.classic_cost / CLASSIC_TARGET_RATIO
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
        *recommendation_lines(results),
        "",
        *options_section(results, plots.get("options")),
        f"## Cost per {cfg.records:,}-record ingest",
        "",
        f"✗ = the measured Max Memory Used does not fit that memory size; ⚠ = it fits with less than "
        f"{cfg.memory_headroom:.0%} to spare. Neither is recommended.",
        "",
    ]
    for arch in cfg.architectures:
        sections += [f"### {arch} ({tables.arch_source(results, arch)})", "", tables.cost_grid(results, arch), ""]
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
            sections += [*check_lines(results), "", tables.check_table(results), ""]
    sections += [
        "## Prices (us-east-1)",
        "",
        tables.price_table(),
        "",
        "## Notes",
        "",
        *note_lines(results),
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
    from experiments.cost.options_report import plot_options
    from experiments.cost.plots import write_plots

    out.mkdir(parents=True, exist_ok=True)
    files = write_csvs(results, out)
    results.files = files
    plots = write_plots(results, out)
    options_plot = plot_options(results, out / "options.png")
    if options_plot is not None:
        plots["options"] = options_plot
    files = {**files, **plots}
    files["report"] = write_markdown(results, out, plots)
    return files
