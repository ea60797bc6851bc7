"""Markdown tables of the results (shared by the report and the notebook)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from experiments.cost.project import FULL_VCPU_MB
from experiments.cost.recommend import has_headroom
from pricing.billing import cost, ingest_usage, invocation_usage
from pricing.prices import (
    CLASSIC,
    DAYS_PER_MONTH,
    ENDPOINT_PRICES,
    INGEST_RECORDS,
    LAMBDA_PRICES,
    REFERENCE_ENDPOINT,
    price_table_rows,
)

if TYPE_CHECKING:
    from experiments.cost.experiment import Results
    from experiments.cost.measurement import Spread


def usd(value: float) -> str:
    """Dollars with three significant digits, never in scientific notation."""
    if value == 0 or not math.isfinite(value):
        return f"${value:g}"
    decimals = max(2, 2 - math.floor(math.log10(abs(value))))
    return f"${value:,.{decimals}f}"


def number(value: float) -> str:
    """A count with three significant digits and thousands separators."""
    if not math.isfinite(value):
        return "never"
    if value >= 100:
        return f"{round(value, -int(math.floor(math.log10(value))) + 2):,.0f}"
    return f"{value:.3g}"


def markdown(header: list[str], rows: list[list[str]], align: str = "") -> str:
    """A Markdown table; ``align`` is one letter per column (l or r), right by default."""
    marks = [":---" if (align[i : i + 1] or "r") == "l" else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def spread_cell(s: Spread, decimals: int = 1) -> str:
    """``median [q1-q3] (low-high)``."""
    f = f",.{decimals}f"
    return f"{s.median:{f}} [{s.q1:{f}}-{s.q3:{f}}] ({s.low:{f}}-{s.high:{f}})"


def choices(results: Results) -> list[str]:
    """The recommended and the cheapest configuration, one line each."""
    lines = []
    for label, row in (("recommended", results.recommended), ("cheapest (no target)", results.cheapest)):
        if row is None:
            lines.append(f"{label}: no configuration meets {results.config.latency}")
        else:
            e = row.estimate
            lines.append(
                f"{label}: batch {e.batch_size:,}, {e.memory_mb:,} MB, {e.architecture}: "
                f"{usd(row.cost_per_ingest)}/ingest, {e.duration_ms:,.1f} ms per invocation"
            )
    return lines


def price_table() -> str:
    """Every price used, with its unit and source."""
    return markdown(["item", "price", "unit", "source"], [list(r.values()) for r in price_table_rows()], "llll")


def classic_table(results: Results) -> str:
    """The classic study's figures beside ours at 192 MB."""
    rows = []
    for c in results.classic:
        est = c.ours.estimate
        rows.append(
            [
                f"{c.batch_size:,}",
                f"{c.classic_duration_ms:,.0f} ms",
                usd(c.classic_cost),
                f"{est.duration_ms:,.1f} ms",
                f"{c.ours.billed_ms:,.1f} ms",
                usd(c.ours_warm.cost_per_ingest),
                usd(c.ours.cost_per_ingest),
                f"{c.ratio:,.1f}x",
            ]
        )
    rate = results.config.cold_start_rate
    header = [
        "batch size",
        f"classic duration ({CLASSIC.year})",
        "classic $/ingest",
        f"ours: warm duration ({est_source(results)})",
        f"ours: billed ms (avg, {rate:.0%} cold)",
        "ours $/ingest, warm only",
        f"ours $/ingest, {rate:.0%} cold starts",
        "classic / ours",
    ]
    return markdown(header, rows)


def est_source(results: Results) -> str:
    """Where the durations come from: ``projected`` (local) or ``measured`` (aws)."""
    return "projected" if results.config.target == "local" else "measured"


def arch_source(results: Results, architecture: str) -> str:
    """``measured``, or the architecture whose durations ``architecture`` is priced with."""
    measured = results.measured_architecture
    return "measured" if architecture == measured else f"assumed as fast as {measured}"


def cost_grid(results: Results, architecture: str) -> str:
    """Cost per ingest: a row per batch size, a column per memory size (✗ = does not fit)."""
    rows_by = {
        (r.estimate.batch_size, r.estimate.memory_mb): r
        for r in results.costs
        if r.estimate.architecture == architecture
    }
    memories = sorted({m for _, m in rows_by})
    batches = sorted({b for b, _ in rows_by})
    body = []
    for batch in batches:
        cells = [f"{batch:,}"]
        for memory in memories:
            row = rows_by.get((batch, memory))
            if row is None:
                cells.append("")
            elif not row.estimate.fits:
                cells.append(f"✗ {usd(row.cost_per_ingest)} (needs {row.estimate.max_memory_mb} MB)")
            elif not has_headroom(row.estimate, results.config.memory_headroom):
                cells.append(f"⚠ {usd(row.cost_per_ingest)} (peak {row.estimate.max_memory_mb} MB)")
            else:
                cells.append(usd(row.cost_per_ingest))
        body.append(cells)
    return markdown(["batch size", *[f"{m:,} MB" for m in memories]], body)


def duration_grid(results: Results, architecture: str) -> str:
    """Warm duration (ms) per batch size and memory size."""
    rows_by = {(e.batch_size, e.memory_mb): e for e in results.estimates if e.architecture == architecture}
    memories = sorted({m for _, m in rows_by})
    batches = sorted({b for b, _ in rows_by})
    body = [[f"{b:,}", *[f"{rows_by[(b, m)].duration_ms:,.1f}" for m in memories]] for b in batches]
    init = [e.init_ms for e in results.estimates if e.architecture == architecture and e.batch_size == batches[0]]
    body.append(["init (cold start)", *[f"{i:,.0f}" for i in init]])
    return markdown(["batch size", *[f"{m:,} MB" for m in memories]], body)


def measured_table(results: Results) -> str:
    """Warm invocations as measured: medians, IQR and range."""
    body = []
    for (memory, batch), p in sorted(results.profiles.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cut = f"cut to {p.text_chars_max} chars" if p.text_chars_max else "as in data set"
        body.append(
            [
                f"{batch:,}",
                f"{memory:,}",
                spread_cell(p.duration),
                f"{p.cpu.median:,.1f} [{p.cpu.q1:,.1f}-{p.cpu.q3:,.1f}]" if p.cpu else "-",
                f"{p.off_cpu.median:,.1f}" if p.off_cpu else "-",
                f"{p.max_memory_mb}",
                f"{p.payload_bytes / 1e6:.2f} MB, {cut}",
                f"{p.duration.n}" + (f" (+{p.errors} failed)" if p.errors else ""),
            ]
        )
    header = [
        "batch size",
        "memory MB",
        "Duration ms: median [IQR] (min-max)",
        "CPU ms: median [IQR]",
        "off-CPU ms",
        "Max Memory Used MB",
        "payload",
        "n",
    ]
    return markdown(header, body)


def init_table(results: Results) -> str:
    body = []
    for memory, p in sorted(results.init.items()):
        body.append(
            [
                f"{memory:,}",
                spread_cell(p.init, 0),
                f"{p.cpu.median:,.0f}" if p.cpu else "-",
                f"{p.off_cpu.median:,.0f}" if p.off_cpu else "-",
                f"{p.max_memory_mb}",
                f"{p.init.n}",
            ]
        )
    header = [
        "memory MB",
        "Init Duration ms: median [IQR] (min-max)",
        "init CPU ms",
        "init off-CPU ms",
        "Max Memory Used MB",
        "n",
    ]
    return markdown(header, body)


def check_table(results: Results) -> str:
    body = [
        [
            f"{c.memory_mb:,}",
            f"{c.memory_mb / FULL_VCPU_MB:.1%}",
            f"{c.batch_size:,}",
            f"{c.projected_ms:,.1f}",
            f"{c.measured_ms:,.1f} [{c.measured_q1:,.1f}-{c.measured_q3:,.1f}]",
            f"{c.ratio:.2f}",
            f"{c.unthrottled_cpu_ms:,.1f} → {c.cpu_ms:,.1f}",
            f"{c.ratio_own:.2f}",
            f"{c.throttled_ms:,.1f}",
            f"{c.n}",
        ]
        for c in results.checks
    ]
    header = [
        "memory MB",
        "CPU quota",
        "batch size",
        "projected ms",
        "measured ms [IQR]",
        "measured / projected",
        "CPU ms: unthrottled → under quota",
        "measured / model on own CPU",
        "throttled ms",
        "n",
    ]
    return markdown(header, body)


def break_even_table(results: Results) -> str:
    """One row per Lambda configuration; break-even ingests/day against each endpoint."""
    configs = list(dict.fromkeys(b.row for b in results.break_evens))
    endpoints = list(dict.fromkeys(b.endpoint.instance for b in results.break_evens))
    lookup = {(id(b.row), b.endpoint.instance, b.free_tier): b for b in results.break_evens}
    body = []
    for row in configs:
        est = row.estimate
        marginal = cost(row.per_ingest, LAMBDA_PRICES[est.architecture])
        cells = [f"{est.batch_size:,}", f"{est.memory_mb:,} MB {est.architecture}", usd(marginal)]
        for instance in endpoints:
            off, on = lookup[(id(row), instance, False)], lookup[(id(row), instance, True)]
            cells.append(f"{number(off.ingests_per_day)} ({number(on.ingests_per_day)})")
        ref = lookup.get((id(row), REFERENCE_ENDPOINT, False))
        cells.append(number(ref.records_per_second) if ref else "-")
        body.append(cells)
    prices = {b.endpoint.instance: b.endpoint.per_month for b in results.break_evens}
    header = [
        "batch size",
        "Lambda configuration",
        "$/ingest (marginal)",
        *[
            f"{i} ({usd(prices[i])}/month"
            + (
                ""
                if ENDPOINT_PRICES.get(i) is None or ENDPOINT_PRICES[i].creatable
                else "; classic only, refused today"
            )
            + "): ingests/day, free tier off (on)"
            for i in endpoints
        ],
        f"records/s at the {REFERENCE_ENDPOINT} break-even",
    ]
    return markdown(header, body, align="rl")


def classic_break_even() -> str:
    """The classic study's own break-even (its $/ingest against its ~$50/month endpoint)."""
    parts = []
    for batch, usd_per_ingest in CLASSIC.cost_per_ingest.items():
        per_day = CLASSIC.endpoint_per_month / usd_per_ingest / DAYS_PER_MONTH
        parts.append(f"batch {batch}: {number(per_day)} ingests/day")
    return "; ".join(parts)


def classic_recomputed() -> str:
    """The classic figures recomputed from 3.8 s at 192 MB, 100 ms steps, today's x86_64 prices."""
    price = LAMBDA_PRICES["x86_64"]
    usage = invocation_usage(CLASSIC.duration_ms, CLASSIC.memory_mb, step_ms=CLASSIC.billing_step_ms)
    return "; ".join(
        f"batch {b}: {usd(cost(ingest_usage(usage, INGEST_RECORDS, b), price))}" for b in CLASSIC.cost_per_ingest
    )
