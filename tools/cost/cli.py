"""``python -m tools.cost``: the batch-size cost experiment (``make cost-experiment``).

Usage::

    python -m tools.cost [--target local|aws] [--batch-sizes 1,10,100,1000,10000]
        [--memory 128,256,512,1024,1769,3008] [--architectures x86_64,arm64] [--repeat N]
        [--cold-starts N] [--cold-start-rate 0.01] [--latency-target-ms 1000]
        [--latency-per batch|record] [--memory-headroom 0.1] [--records 50000] [--free-tier --ingests-per-day N]
        [--no-quota-check] [--check-repeat N] [--quota-period-ms 100] [--function-name NAME]
        [--from-csv measurements.csv] [--small] [--out build/cost] [--no-progress]

Prints the headline figures; the CSVs, ``report.md`` and the plots go to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.cost import tables
from tools.cost.experiment import DEFAULT_OUT, ExperimentConfig, Results, run_experiment
from tools.cost.recommend import LatencyTarget


def _ints(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated whole numbers, e.g. 1,10,100") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one value")
    return values


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.cost",
        description="The batch-size cost experiment (make cost-experiment): measure, project, price, recommend, "
        "plot. Writes measurements.csv, estimates.csv, report.md and PNG plots to --out.",
    )
    d = ExperimentConfig()
    p.add_argument("--target", choices=("local", "aws"), default="local", help="local runtime or the deployed function")
    p.add_argument("--batch-sizes", type=_ints, default=d.batch_sizes, help="records per invocation (1-10000)")
    p.add_argument("--memory", type=_ints, default=d.memory_sizes, help="memory sizes in MB (192 is always added)")
    p.add_argument("--architectures", type=_names, default=d.architectures, help="x86_64,arm64")
    p.add_argument("--repeat", type=int, default=d.repeat, help="timed warm invocations per batch size")
    p.add_argument("--cold-starts", type=int, default=d.cold_starts, help="extra fresh environments (local)")
    p.add_argument(
        "--cold-start-rate", type=float, default=d.cold_start_rate, help="share of invocations that are cold"
    )
    p.add_argument(
        "--latency-target-ms", type=float, default=d.latency.ms, help="latency target for the recommendation"
    )
    p.add_argument(
        "--latency-per",
        choices=("batch", "record"),
        default=d.latency.per,
        help="the target is per invocation or per record",
    )
    p.add_argument(
        "--memory-headroom", type=float, default=d.memory_headroom, help="share of memory left free to recommend"
    )
    p.add_argument("--records", type=int, default=d.records, help="records per ingest")
    p.add_argument("--free-tier", action="store_true", help="price the tables with the free tier at --ingests-per-day")
    p.add_argument("--ingests-per-day", type=float, default=d.ingests_per_day, help="volume for --free-tier")
    p.add_argument("--no-quota-check", dest="quota_check", action="store_false", help="skip the run under a CPU quota")
    p.add_argument("--check-repeat", type=int, default=d.check_repeat, help="timed invocations per quota-check point")
    p.add_argument("--quota-period-ms", type=float, default=d.quota_period_ms, help="CFS period of the quota check")
    p.add_argument(
        "--check-max-ms", type=float, default=d.check_max_ms, help="skip quota-check points projected longer"
    )
    p.add_argument("--function-name", help="deployed function (aws; default: deploy.toml's)")
    p.add_argument("--from-csv", type=Path, help="re-price an earlier measurements.csv instead of measuring")
    p.add_argument("--small", action="store_true", help="batch sizes 1,10,100, memory 128,1024, repeat 2")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The :class:`ExperimentConfig` the options describe (``--small`` sets its defaults first)."""
    base = ExperimentConfig.small() if args.small else ExperimentConfig()
    defaults = parser().parse_args([])
    chosen = {
        "target": args.target,
        "architectures": args.architectures,
        "cold_start_rate": args.cold_start_rate,
        "latency": LatencyTarget(args.latency_target_ms, args.latency_per),
        "records": args.records,
        "memory_headroom": args.memory_headroom,
        "free_tier": args.free_tier,
        "ingests_per_day": args.ingests_per_day,
        "quota_check": args.quota_check,
        "quota_period_ms": args.quota_period_ms,
        "check_max_ms": args.check_max_ms,
        "function_name": args.function_name,
        "out": args.out,
        "progress": args.progress,
    }
    for key, attr in (("batch_sizes", "batch_sizes"), ("memory", "memory_sizes"), ("repeat", "repeat")):
        if not args.small or getattr(args, key) != getattr(defaults, key):
            chosen[attr] = getattr(args, key)
    for key in ("cold_starts", "check_repeat"):
        if not args.small or getattr(args, key) != getattr(defaults, key):
            chosen[key] = getattr(args, key)
    for key, value in chosen.items():
        setattr(base, key, value)
    return base


def summary(results: Results) -> str:
    """The headline figures, for the terminal."""
    lines = ["", tables.classic_table(results), ""]
    for label, row in (("recommended", results.recommended), ("cheapest (no target)", results.cheapest)):
        if row is None:
            lines.append(f"{label}: no configuration meets {results.config.latency}")
        else:
            e = row.estimate
            lines.append(
                f"{label}: batch {e.batch_size:,}, {e.memory_mb:,} MB, {e.architecture}: "
                f"{tables.usd(row.cost_per_ingest)}/ingest, {e.duration_ms:,.1f} ms per invocation"
            )
    t2 = [b for b in results.break_evens if b.endpoint.instance == "ml.t2.medium" and not b.free_tier]
    for b in t2:
        lines.append(
            f"break-even vs ml.t2.medium: batch {b.row.estimate.batch_size:,} "
            f"({b.row.estimate.memory_mb:,} MB {b.row.estimate.architecture}): "
            f"{tables.number(b.ingests_per_day)} ingests/day"
        )
    lines.append(f"quota check: {results.check_note}")
    lines.append(f"wrote {', '.join(str(p) for p in results.files.values())}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = config_from_args(args)
        config.validate()
    except ValueError as exc:
        print(f"tools.cost: {exc}", file=sys.stderr)
        return 2
    results = run_experiment(config, from_csv=args.from_csv)
    print(summary(results))
    return 0
