"""The experiment's PNG plots (matplotlib, Agg backend: no display needed).

``cost_per_ingest.png``
    cost per ingest against batch size, a line per memory size, one panel per
    architecture, the classic study's three figures and the target ratio marked.
``duration.png``
    warm duration against batch size: a line per memory size, the local measurement
    (median, IQR bars) and CPU time, and the runs under a real CPU quota.
``break_even.png``
    monthly cost against ingests per day: Lambda at each batch size (cheapest fitting
    memory) against always-on SageMaker endpoints, with the break-even points.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from experiments.cost import tables  # noqa: E402
from pricing.billing import cost  # noqa: E402
from pricing.prices import CLASSIC, CLASSIC_TARGET_RATIO, DAYS_PER_MONTH, LAMBDA_PRICES, REFERENCE_ENDPOINT  # noqa: E402

if TYPE_CHECKING:
    from experiments.cost.experiment import Results

DPI = 120


def _colours(memories: list[int]) -> dict[int, tuple]:
    cmap = plt.get_cmap("viridis")
    span = max(1, len(memories) - 1)
    return {m: cmap(0.9 * i / span) for i, m in enumerate(memories)}


def _usd(value: float, _pos: object = None) -> str:
    if value >= 1:
        return f"${value:,.0f}"
    return "$" + (f"{value:.10f}".rstrip("0").rstrip(".") or "0")


def _count(value: float, _pos: object = None) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _tier(results: Results) -> str:
    cfg = results.config
    return f"free tier spread over {cfg.ingests_per_day:g} ingests/day" if cfg.free_tier else "free tier off"


def plot_cost(results: Results, path: Path) -> Path:
    """Cost per ingest vs batch size, a line per memory size, a panel per architecture."""
    archs = results.config.architectures
    memories = sorted({r.estimate.memory_mb for r in results.costs})
    colours = _colours(memories)
    fig, axes = plt.subplots(1, len(archs), figsize=(6.2 * len(archs), 5.2), sharey=True, squeeze=False)
    for ax, arch in zip(axes[0], archs):
        misfits: dict[int, list[tuple[int, float]]] = {}
        for memory in memories:
            rows = sorted(
                (r for r in results.costs if r.estimate.architecture == arch and r.estimate.memory_mb == memory),
                key=lambda r: r.estimate.batch_size,
            )
            xs = [r.estimate.batch_size for r in rows]
            ys = [r.cost_per_ingest for r in rows]
            ax.plot(xs, ys, "-o", color=colours[memory], ms=4, lw=1.6, label=f"{memory:,} MB")
            for x, y, r in zip(xs, ys, rows):
                if not r.estimate.fits:
                    ax.plot([x], [y], "x", color="red", ms=9, mew=2)
                    misfits.setdefault(x, []).append((memory, y))
        for x, sizes in misfits.items():
            names = ", ".join(f"{m:,}" for m, _ in sizes)
            ax.annotate(
                f"{names} MB",
                (x, min(y for _, y in sizes)),
                xytext=(0, -16),
                textcoords="offset points",
                fontsize=7,
                color="red",
                ha="center",
            )
        ax.plot(list(CLASSIC.cost_per_ingest), list(CLASSIC.cost_per_ingest.values()), "k*", ms=12)
        target = CLASSIC.cost_per_ingest[100] / CLASSIC_TARGET_RATIO
        ax.plot([100], [target], marker="_", color="k", ms=22, mew=2)
        ax.annotate(
            f"{CLASSIC_TARGET_RATIO:g}x below classic",
            (100, target),
            xytext=(-14, -4),
            textcoords="offset points",
            fontsize=8,
            ha="right",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_ylim(low / 2.5, high * 1.5)  # room for the labels under the lowest points
        ax.set_xlabel("batch size (records per invocation, log scale)")
        ax.set_title(f"{arch} ({tables.arch_source(results, arch)})", fontsize=10)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
        ax.xaxis.set_major_formatter(FuncFormatter(_count))
        ax.yaxis.set_major_formatter(FuncFormatter(_usd))
    rate = results.config.cold_start_rate
    axes[0][0].set_ylabel(f"USD per {results.config.records:,}-record ingest (log scale)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles += [
        Line2D([], [], ls="", marker="*", color="k", ms=12),
        Line2D([], [], ls="", marker="x", color="red", ms=9, mew=2),
    ]
    labels += [f"classic {CLASSIC.year} ({CLASSIC.memory_mb} MB)", "peak memory doesn't fit (size below)"]
    axes[0][-1].legend(handles, labels, title="memory size", fontsize=8, loc="upper right")
    fig.suptitle(
        f"Lambda cost per {results.config.records:,}-record ingest by batch size "
        f"({rate:.0%} cold starts, {_tier(results)}, {results.config.target})\n"
        "below 1,769 MB the lines nearly overlap: by the model, CPU work takes the same GB-seconds at any memory size",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_duration(results: Results, path: Path) -> Path:
    """Warm duration vs batch size: a line per memory size, plus the local measurement."""
    arch = results.measured_architecture
    memories = sorted({e.memory_mb for e in results.estimates})
    colours = _colours(memories)
    fig, ax = plt.subplots(figsize=(11, 5.6))
    for memory in memories:
        est = sorted(
            (e for e in results.estimates if e.architecture == arch and e.memory_mb == memory),
            key=lambda e: e.batch_size,
        )
        ax.plot(
            [e.batch_size for e in est],
            [e.duration_ms for e in est],
            "-o",
            ms=3,
            color=colours[memory],
            label=f"{memory:,} MB",
        )
    if results.config.target == "local":
        profiles = sorted(results.profiles.values(), key=lambda p: p.batch_size)
        xs = [p.batch_size for p in profiles]
        medians = [p.duration.median for p in profiles]
        err = [
            [m - p.duration.q1 for m, p in zip(medians, profiles)],
            [p.duration.q3 - m for m, p in zip(medians, profiles)],
        ]
        ax.errorbar(
            xs, medians, yerr=err, fmt="s", color="k", ms=5, capsize=3, label="measured, unthrottled (median, IQR)"
        )
        cpu = [(p.batch_size, p.cpu.median) for p in profiles if p.cpu]
        if cpu:
            ax.plot(*zip(*cpu), "--", color="grey", label="measured CPU time")
        for check in results.checks:
            ax.plot(
                [check.batch_size], [check.measured_ms], "^", color=colours.get(check.memory_mb, "k"), mec="k", ms=8
            )
        if results.checks:
            ax.plot([], [], "^", color="white", mec="k", ms=8, label="measured under CPU quota (colour = memory)")
    latency = results.config.latency
    if latency.per == "batch":
        ax.axhline(latency.ms, color="crimson", ls=":", lw=1.2, label=f"latency target {latency}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (records per invocation, log scale)")
    ax.set_ylabel("warm invocation duration (ms, log scale)")
    what = "projected from local measurement" if results.config.target == "local" else "measured on AWS"
    ax.set_title(f"Duration by batch size and memory size ({what}, {arch})")
    if results.config.target == "local":
        fig.text(
            0.01,
            0.01,
            "1,769 MB and above coincide (single-threaded: one vCPU is all it uses). Triangles below their line: "
            "short invocations run within one CFS period's quota at full speed.",
            fontsize=8,
            color="dimgrey",
        )
    ax.xaxis.set_major_formatter(FuncFormatter(_count))
    ax.yaxis.set_major_formatter(FuncFormatter(_count))
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="memory size", borderaxespad=0)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_break_even(results: Results, path: Path) -> Path:
    """Monthly cost vs ingests per day: Lambda per batch size against always-on endpoints."""
    evens = [b for b in results.break_evens if not b.free_tier]
    configs = list(dict.fromkeys(b.row for b in evens))
    finite = [b.ingests_per_day for b in evens if 0 < b.ingests_per_day < float("inf")]
    low = max(0.1, min(finite) / 100) if finite else 0.1
    high = max(finite) * 10 if finite else 1e6
    xs = [low * (high / low) ** (i / 200) for i in range(201)]
    fig, ax = plt.subplots(figsize=(11, 5.8))
    colours = plt.get_cmap("plasma")
    for i, row in enumerate(configs):
        est = row.estimate
        t2 = next((b for b in evens if b.row is row and b.endpoint.instance == REFERENCE_ENDPOINT), None)
        colour = colours(0.85 * i / max(1, len(configs) - 1))
        label = f"Lambda, batch {est.batch_size:,}, {est.memory_mb:,} MB {est.architecture}"
        if t2 is not None:
            label += f": {t2.ingests_per_day:,.0f}/day"
            ax.plot([t2.ingests_per_day], [t2.endpoint.per_month], "o", color=colour, mec="k", ms=7, zorder=3)
        marginal = cost(row.per_ingest, LAMBDA_PRICES[est.architecture])
        ax.plot(xs, [marginal * x * DAYS_PER_MONTH for x in xs], color=colour, label=label)
    endpoints = {b.endpoint.instance: b.endpoint for b in evens}
    styles = ["-", "--", "-."]
    for j, endpoint in enumerate(endpoints.values()):
        ax.axhline(
            endpoint.per_month,
            color="k",
            ls=styles[j % 3],
            lw=1.1,
            label=f"{endpoint.instance} always on, ${endpoint.per_month:,.2f}/month",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    if endpoints:
        ax.set_ylim(
            min(e.per_month for e in endpoints.values()) / 1e3, max(e.per_month for e in endpoints.values()) * 1e3
        )
    ax.set_xlabel(f"ingests per day ({results.config.records:,} records each, log scale)")
    ax.set_ylabel("cost per month (USD, log scale)")
    ax.set_title(
        "Break-even: Lambda (free tier off) vs an always-on SageMaker endpoint\n"
        f"dots and legend: ingests/day where Lambda stops being cheaper than {REFERENCE_ENDPOINT}",
        fontsize=10,
    )
    ax.xaxis.set_major_formatter(FuncFormatter(_count))
    ax.yaxis.set_major_formatter(FuncFormatter(_usd))
    ax.grid(True, which="major", alpha=0.35)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_plots(results: Results, out: Path) -> dict[str, Path]:
    """All three plots into ``out``."""
    return {
        "cost_per_ingest": plot_cost(results, out / "cost_per_ingest.png"),
        "duration": plot_duration(results, out / "duration.png"),
        "break_even": plot_break_even(results, out / "break_even.png"),
    }
