"""The serving options' part of the report: tables side by side, break-even curves (``options.png``).

:mod:`experiments.cost.options` prices them; this module only presents them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from experiments.cost.options import (  # noqa: E402
    ASSUMED_RESTORE_MS,
    ASSUMED_SERVERLESS_COLD_START_MS,
    OptionCost,
    break_even_per_day,
)
from experiments.cost.tables import markdown, number, usd  # noqa: E402
from pricing.prices import DAYS_PER_MONTH  # noqa: E402

if TYPE_CHECKING:
    from experiments.cost.experiment import Results

LAMBDA_KINDS = ("lambda on-demand", "lambda snapstart", "lambda provisioned")


def _per_month(results: Results) -> float:
    return results.config.ingests_per_day * DAYS_PER_MONTH


def lambda_grid(results: Results) -> str:
    """Per batch size and memory size: the three Lambda options' $/ingest at the volume, and cold latency."""
    n = _per_month(results)
    by_key: dict[tuple[int, int, str], dict[str, OptionCost]] = {}
    for o in results.options:
        if o.option in LAMBDA_KINDS:
            by_key.setdefault((o.batch_size, o.memory_mb, o.architecture), {})[o.option] = o
    body = []
    for (batch, memory, arch), row in sorted(by_key.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        od, ss, pc = (row[k] for k in LAMBDA_KINDS)
        body.append(
            [
                f"{batch:,}",
                f"{memory:,} {arch}",
                usd(od.per_ingest(n)),
                f"{usd(ss.marginal)} + {usd(ss.fixed_per_month / n)} cache = {usd(ss.per_ingest(n))}",
                f"{usd(pc.marginal)} + {usd(pc.fixed_per_month / n)} = {usd(pc.per_ingest(n))}",
                f"{od.cold_ms:,.0f} / {ss.cold_ms:,.0f} / {pc.cold_ms:,.0f}",
            ]
        )
    header = [
        "batch size",
        "memory MB",
        "on demand $/ingest (init billed)",
        "SnapStart $/ingest",
        "provisioned $/ingest",
        "cold batch latency ms: on demand / SnapStart / provisioned",
    ]
    return markdown(header, body)


def endpoint_table(results: Results) -> str:
    """Per batch size: each SageMaker option's cost a month and per ingest at the volume."""
    n = _per_month(results)
    body = [
        [
            f"{o.batch_size:,}",
            o.label,
            usd(o.per_month(n)),
            usd(o.per_ingest(n)),
            f"{o.warm_ms:,.0f} / {o.cold_ms:,.0f}",
            o.note,
        ]
        for o in sorted(results.options, key=lambda o: (o.batch_size, o.per_month(n)))
        if o.option not in LAMBDA_KINDS
    ]
    header = ["batch size", "option", "$/month", "$/ingest", "latency ms warm / cold", "note"]
    return markdown(header, body, align="rllrrl")


def cheapest_lambda(results: Results, batch: int) -> dict[str, OptionCost]:
    """The cheapest memory size of each Lambda option at ``batch`` (at the volume)."""
    n = _per_month(results)
    best: dict[str, OptionCost] = {}
    for o in results.options:
        cheaper = o.option not in best or o.per_month(n) < best[o.option].per_month(n)
        if o.option in LAMBDA_KINDS and o.batch_size == batch and cheaper:
            best[o.option] = o
    return best


def curve_batch(results: Results) -> int | None:
    """The batch size of the break-even curves: the recommended option's, else 100, else the largest."""
    if results.choice is not None and results.choice.chosen is not None:
        return results.choice.chosen.batch_size
    batches = sorted({o.batch_size for o in results.options})
    return 100 if 100 in batches else (batches[-1] if batches else None)


def break_even_table(results: Results) -> str:
    """Ingests a day at which each Lambda option (cheapest memory) costs as much as each other option."""
    batch = curve_batch(results)
    if batch is None:
        return ""
    lambdas = cheapest_lambda(results, batch)
    others = [o for o in results.options if o.batch_size == batch and o.option not in LAMBDA_KINDS]
    others += [lambdas[k] for k in ("lambda snapstart", "lambda provisioned") if k in lambdas]
    body = []
    for kind in LAMBDA_KINDS[:2]:
        if kind not in lambdas:
            continue
        mine = lambdas[kind]
        cells = [f"{mine.label} ({mine.memory_mb:,} MB)"]
        for other in others:
            if other is mine:
                cells.append("-")
                continue
            per_day = break_even_per_day(mine, other)
            cells.append(number(per_day) if per_day is not None else "never")
        body.append(cells)
    return markdown([f"batch {batch:,}: ingests/day where it costs as much as", *[o.label for o in others]], body, "l")


#: Shares of an ingest's records that filter patterns drop, for the filtering table.
FILTERED_SHARES = (0.05, 0.25, 0.5)


def filtering_table(results: Results) -> str:
    """What event filtering saves on one ingest: records and invocations not delivered, and USD, for the
    recommended option (or on demand at 192 MB / batch 100) at a few shares of records filtered out.

    Filtered records are never delivered nor billed (docs/aws-notes.md §2): the ingest needs
    ``ceil(records x (1 - share) / batch)`` invocations, priced at the option's marginal cost per invocation.
    """
    option = results.choice.chosen if results.choice is not None and results.choice.chosen else None
    if option is None or option.option not in LAMBDA_KINDS:
        option = results.headline.on_demand if results.headline is not None else None
    if option is None:
        return ""
    records = results.config.records
    calls = math.ceil(records / option.batch_size)
    per_call = option.marginal / calls
    body = []
    for share in FILTERED_SHARES:
        delivered = math.ceil(records * (1 - share) / option.batch_size)
        body.append(
            [
                f"{share:.0%}",
                f"{round(records * share):,}",
                f"{calls - delivered:,} of {calls:,}",
                f"{usd((calls - delivered) * per_call)} of {usd(option.marginal)}",
            ]
        )
    header = [
        f"records filtered out ({option.label}, {option.memory_mb:,} MB, batch {option.batch_size:,})",
        "records not delivered",
        "invocations saved",
        "$ saved per ingest",
    ]
    return markdown(header, body)


def section(results: Results, plot: Path | None) -> list[str]:
    """The report's "Serving options" section."""
    cfg = results.config
    lines = ["## Serving options: on demand, SnapStart, provisioned concurrency, SageMaker", ""]
    if results.headline is not None:
        lines += [f"- {line.strip()}" for line in results.headline.lines()] + [""]
    if results.choice is not None:
        lines += [
            f"**Recommendation** (at {cfg.ingests_per_day:g} ingests a day, {cfg.cold_start_rate:.0%} cold starts, "
            f"{cfg.latency}): {results.choice.reason()}",
            "",
        ]
    restore = (
        f"{cfg.restore_ms:,.0f} ms (given)" if cfg.restore_ms is not None else f"{ASSUMED_RESTORE_MS:,.0f} ms (assumed)"
    )
    lines += [
        f"Prices per {cfg.records:,}-record ingest at {cfg.ingests_per_day:g} ingests a day (fixed monthly costs "
        f"spread over them); SnapStart restore {restore}; provisioned concurrency with "
        f"{cfg.provisioned_environments} environment(s); SageMaker Serverless cold start "
        f"{ASSUMED_SERVERLESS_COLD_START_MS:,.0f} ms (assumed). The model and its assumptions: "
        "`experiments/cost/options.py`.",
        "",
        lambda_grid(results),
        "",
        endpoint_table(results),
        "",
        break_even_table(results),
        "",
        "**Event filtering** (`filter_criteria` in deploy.toml; a DynamoDB source drops REMOVE events by "
        "default): records no pattern matches are dropped before invocation and never billed.",
        "",
        filtering_table(results),
        "",
    ]
    if plot is not None:
        lines += [f"![serving options]({plot.name})", ""]
    return lines


def _usd(value: float, _pos: object = None) -> str:
    return f"${value:,.0f}" if value >= 1 else f"${value:.2g}"


def plot_options(results: Results, path: Path) -> Path | None:
    """Monthly cost against ingests a day for every option at :func:`curve_batch`, break-evens marked."""
    batch = curve_batch(results)
    if batch is None:
        return None
    chosen = list(cheapest_lambda(results, batch).values())
    chosen += [o for o in results.options if o.batch_size == batch and o.option not in LAMBDA_KINDS]
    xs = [0.1 * 10 ** (i / 40) for i in range(241)]  # 0.1 to 1,000,000 ingests a day
    fig, ax = plt.subplots(figsize=(11, 6))
    colours = plt.get_cmap("tab10")
    for i, option in enumerate(chosen):
        ys = [option.per_month(x * DAYS_PER_MONTH) for x in xs]
        style = "-" if option.option in LAMBDA_KINDS else "--"
        label = f"{option.label}" + (f", {option.memory_mb:,} MB" if option.option in LAMBDA_KINDS else "")
        ax.plot(xs, ys, style, color=colours(i % 10), label=label)
    lambdas = [o for o in chosen if o.option in LAMBDA_KINDS]
    for mine in lambdas:
        for other in chosen:
            if other.option in LAMBDA_KINDS:
                continue
            per_day = break_even_per_day(mine, other)
            if per_day is not None and xs[0] <= per_day <= xs[-1]:
                ax.plot([per_day], [other.per_month(per_day * DAYS_PER_MONTH)], "o", color="k", ms=4, zorder=3)
    ax.axvline(results.config.ingests_per_day, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"ingests per day ({results.config.records:,} records each, log scale)")
    ax.set_ylabel("cost per month (USD, log scale)")
    ax.set_title(
        f"Serving options at batch {batch:,} ({results.config.cold_start_rate:.0%} cold starts): monthly cost; "
        "dots = break-even of a Lambda option with an endpoint",
        fontsize=10,
    )
    ax.yaxis.set_major_formatter(FuncFormatter(_usd))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.grid(True, which="major", alpha=0.35)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
