"""``python -m experiments.cost``: the batch-size cost experiment (``make cost-experiment``).

Usage::

    python -m experiments.cost [--target local|aws] [--batch-sizes 1,10,100,1000,10000]
        [--memory 128,256,512,1024,1769,3008] [--architectures x86_64,arm64] [--repeat N]
        [--cold-starts N] [--cold-start-rate 0.01] [--latency-target-ms 1000]
        [--latency-per batch|record] [--memory-headroom 0.1] [--records 50000] [--free-tier --ingests-per-day N]
        [--no-quota-check] [--check-repeat N] [--quota-period-ms 100] [--function-name NAME]
        [--from-csv measurements.csv] [--small] [--out build/cost] [--no-progress]
        [--restore-ms N] [--provisioned-environments N]

Prints the headline figures; the CSVs, ``report.md`` and the plots go to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from experiments.cost import tables
from experiments.cost.experiment import DEFAULT_OUT, ExperimentConfig, Results, run_experiment
from experiments.cost.recommend import LatencyTarget
from pricing.prices import REFERENCE_ENDPOINT


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
    """The options; one left out is not in the namespace (the configuration's default, or ``--small``'s, applies)."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.cost",
        description="The batch-size cost experiment (make cost-experiment): measure, project, price, recommend, "
        "plot. Writes measurements.csv, estimates.csv, report.md and PNG plots to --out.",
        argument_default=argparse.SUPPRESS,
    )
    d = ExperimentConfig()
    p.add_argument("--target", choices=("local", "aws"), help=f"local runtime or the deployed function ({d.target})")
    p.add_argument("--batch-sizes", type=_ints, help="records per invocation (1-10000)")
    p.add_argument("--memory", type=_ints, dest="memory_sizes", help="memory sizes in MB (192 is always added)")
    p.add_argument("--architectures", type=_names, help=",".join(d.architectures))
    p.add_argument("--repeat", type=int, help=f"timed warm invocations per batch size ({d.repeat})")
    p.add_argument("--cold-starts", type=int, help=f"extra fresh environments, local ({d.cold_starts})")
    p.add_argument("--cold-start-rate", type=float, help=f"share of invocations that are cold ({d.cold_start_rate})")
    p.add_argument("--latency-target-ms", type=float, help=f"latency target for the recommendation ({d.latency.ms:g})")
    p.add_argument(
        "--latency-per",
        choices=("batch", "record"),
        help=f"the target is per invocation or per record ({d.latency.per})",
    )
    p.add_argument(
        "--memory-headroom", type=float, help=f"share of memory left free to recommend ({d.memory_headroom})"
    )
    p.add_argument("--records", type=int, help=f"records per ingest ({d.records:,})")
    p.add_argument("--free-tier", action="store_true", help="price the tables with the free tier at --ingests-per-day")
    p.add_argument(
        "--ingests-per-day",
        type=float,
        help=f"volume for --free-tier and the serving options' fixed monthly costs ({d.ingests_per_day:g})",
    )
    p.add_argument("--no-quota-check", dest="quota_check", action="store_false", help="skip the run under a CPU quota")
    p.add_argument("--check-repeat", type=int, help=f"timed invocations per quota-check point ({d.check_repeat})")
    p.add_argument("--quota-period-ms", type=float, help=f"CFS period of the quota check ({d.quota_period_ms:g})")
    p.add_argument("--check-max-ms", type=float, help=f"skip quota-check points projected longer ({d.check_max_ms:g})")
    p.add_argument("--function-name", help="deployed function (aws; default: deploy.toml's)")
    p.add_argument(
        "--restore-ms",
        type=float,
        help="SnapStart restore duration to price, e.g. the local twin's measured restore time "
        "(default: the documented assumption, experiments.cost.options.ASSUMED_RESTORE_MS)",
    )
    p.add_argument(
        "--provisioned-environments",
        type=int,
        help=f"environments priced for provisioned concurrency ({d.provisioned_environments})",
    )
    p.add_argument(
        "--from-csv", type=Path, default=None, help="re-price an earlier measurements.csv instead of measuring"
    )
    p.add_argument(
        "--small", action="store_true", default=False, help="batch sizes 1,10,100, memory 128,1024, repeat 2"
    )
    p.add_argument("--out", type=Path, help=f"output folder ({DEFAULT_OUT})")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The :class:`ExperimentConfig` the options describe, on top of ``--small``'s or the default one."""
    given = {k: v for k, v in vars(args).items() if k not in ("small", "from_csv")}
    base = ExperimentConfig.small() if args.small else ExperimentConfig()
    ms, per = given.pop("latency_target_ms", base.latency.ms), given.pop("latency_per", base.latency.per)
    return replace(base, latency=LatencyTarget(ms, per), **given)


def summary(results: Results) -> str:
    """The headline figures, for the terminal."""
    lines = ["", tables.classic_table(results), "", *tables.choices(results)]
    for b in results.break_evens:
        if b.endpoint.instance == REFERENCE_ENDPOINT and not b.free_tier:
            e = b.row.estimate
            lines.append(
                f"break-even vs {REFERENCE_ENDPOINT}: batch {e.batch_size:,} ({e.memory_mb:,} MB {e.architecture}): "
                f"{tables.number(b.ingests_per_day)} ingests/day"
            )
    if results.headline is not None:
        lines += results.headline.lines()
    if results.choice is not None:
        lines.append("serving options: " + results.choice.reason().replace("**", ""))
    lines.append(f"quota check: {results.check_note}")
    lines.append(f"wrote {', '.join(str(p) for p in results.files.values())}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = config_from_args(args)
        config.validate()
    except ValueError as exc:
        print(f"experiments.cost: {exc}", file=sys.stderr)
        return 2
    results = run_experiment(config, from_csv=args.from_csv)
    print(summary(results))
    return 0
