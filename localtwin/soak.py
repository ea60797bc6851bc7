"""The fault soak (``make soak``): the demo's replay under fire, then the fuzzer.

1. Replays ``--records`` records (1 % poison) through the local twin, as ``make demo``
   does, while :mod:`localtwin.faults` throttles ``--throttle`` of the results
   table's writes, kills a worker mid-batch about every ``--kill-every`` records and
   holds ``--timeouts`` writes past the function's timeout (``--timeout-s``, shortened
   from deploy.toml's so a timeout costs seconds, not a minute). Poison records also go
   to an SQS quarantine queue, read back at the end.
2. Checks and prints: every good record has exactly one result in the results table
   (0 lost; the table is keyed by ``record_id``, so a redelivered record overwrites its
   own item), every poison record was quarantined with its reason (in the queue and in
   the log), nothing was given up on, every shard's checkpoint reached the shard's last
   record, and that the faults did happen (a soak that injected nothing proves
   nothing); with the retries, bisections and function errors it took.
3. Runs ``--fuzz-cases`` hostile events against the handler (:mod:`testing.fuzz`).

Exit status 0 when every check passed, 1 otherwise, 130 when interrupted.

Usage: ``python -m localtwin.soak [--records 50000] [--shards 4] [--fuzz-cases 10000]``
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from localtwin.demo import replay_with_progress
from localtwin.faults import FaultPlan
from localtwin.invoke import BUILD
from localtwin.replay.run import ReplayOptions, ReplayResult
from release.settings import Settings, SettingsError, load_settings

OUT_DIR = BUILD / "soak"


@dataclass(frozen=True)
class SoakCheck:
    """One line of the verdict."""

    name: str
    ok: bool
    detail: str


def soak_checks(result: ReplayResult, plan: FaultPlan) -> list[SoakCheck]:
    """The soak's verdict on a replay run with ``plan``'s faults and a quarantine queue."""
    good, poison = result.expected["predicted"], result.expected["quarantined"]
    logged = result.function.quarantined  # record id -> reason, from the function's log
    queued: dict[str, str] = {}
    for message in result.quarantine_messages:
        queued.setdefault(str(message.get("record_id")), str(message.get("reason") or ""))
    copies = len(result.quarantine_messages) - len(queued)
    faults = result.faults
    assert faults is not None, "soak_checks needs a replay run with faults"
    at_end = [shard for shard, end in result.shard_ends.items() if result.checkpoints.get(shard) == end]
    errors = result.stats.error_types
    checks = [
        SoakCheck(
            "results",
            not result.problems and result.lost == 0 and result.predicted == good,
            f"{result.predicted:,} of {good:,} good records have a result: lost {result.lost:,}; "
            f"{sum(c > 1 for c in faults.writes.values()):,} records written more than once ({faults.rewrites:,} "
            "repeated writes), each over its own item",
        ),
        SoakCheck(
            "quarantine",
            set(queued) == set(logged) and len(logged) == poison and all(queued.values()),
            f"{len(set(queued) & set(logged)):,} of {poison:,} poison records quarantined with their reason "
            f"({len(set(queued) & set(logged)) / poison:.0%}); queue: {len(result.quarantine_messages):,} messages, "
            f"{copies:,} repeated (at least once)"
            if poison
            else "no poison records were written",
        ),
        SoakCheck(
            "given up",
            result.given_up == 0,
            f"{result.given_up:,} records sent to the on-failure queue ({result.on_failure_messages} messages)",
        ),
        SoakCheck(
            "checkpoints",
            len(at_end) == len(result.shard_ends) > 0,
            f"{len(at_end)} of {len(result.shard_ends)} shards checkpointed at their last record",
        ),
        SoakCheck(
            "faults",
            (faults.kills > 0 or not plan.kill_every)
            and errors.get("Sandbox.Timedout", 0) >= plan.timeouts
            and (faults.throttled_errors + faults.throttled_partial > 0 or not plan.throttle_share),
            f"throttled {faults.throttled_errors + faults.throttled_partial:,} of {faults.calls:,} result writes "
            f"({faults.throttled_errors:,} ProvisionedThroughputExceeded, {faults.throttled_partial:,} partial with "
            f"{faults.unprocessed_items:,} items unprocessed; {faults.burst_calls:,} in {faults.bursts} bursts of "
            f"{plan.burst_s:g} s); {faults.kills} workers killed mid-batch "
            f"({faults.kills_missed} kills found no invocation in flight); {faults.held} writes held "
            f"{plan.hold_s:g} s",
        ),
    ]
    return checks


def format_soak(result: ReplayResult, plan: FaultPlan, checks: list[SoakCheck], elapsed_s: float) -> str:
    """The soak's report: what was injected, what it took, the verdict."""
    stats, fn = result.stats, result.settings.function
    errors = ", ".join(f"{name} {count:,}" for name, count in sorted(stats.error_types.items())) or "none"
    lines = [
        f"Soak: {result.written:,} records ({result.expected['quarantined']:,} poison) through "
        f"{result.options.source} ({result.shards} shards) -> {fn.name} ({fn.memory_mb} MB, timeout {fn.timeout_s} s), "
        f"batch size {result.batch_size}, {result.environments} environments, in {elapsed_s:.0f} s",
        f"  injected     throttling of {plan.throttle_share:.0%} of result writes, a worker killed about every "
        f"{plan.kill_every:,} records, {plan.timeouts} writes held past the timeout, {plan.bursts} throttling bursts",
        f"  it took      {stats.invocations:,} invocations for {stats.batches:,} batches: {stats.retries:,} retries, "
        f"{stats.bisections:,} bisections, {stats.partial_failures:,} partial failures "
        f"({result.function.metrics['RecordsRetried']:,} records reported for retry)",
        f"  errors       {errors}",
    ]
    lines += [f"  {'ok ' if check.ok else 'FAIL'} {check.name:<12} {check.detail}" for check in checks]
    lines += [f"  PROBLEM      {problem}" for problem in result.problems]
    return "\n".join(lines)


def soak_settings(settings: Settings, timeout_s: int) -> Settings:
    """``settings`` with the function's timeout shortened for the soak."""
    return replace(settings, function=replace(settings.function, timeout_s=timeout_s))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="records to replay (default 50,000)")
    parser.add_argument("--shards", type=int, default=4, help="Kinesis shards (default 4)")
    parser.add_argument("--source", choices=("kinesis", "dynamodb"), default="kinesis")
    parser.add_argument("--throttle", type=float, default=0.10, help="share of result writes throttled (0.10)")
    parser.add_argument("--kill-every", type=int, default=5_000, help="records between worker kills (5,000)")
    parser.add_argument("--timeouts", type=int, default=3, help="writes held past the function timeout (3)")
    parser.add_argument("--bursts", type=int, default=3, help="bursts in which every result write is throttled (3)")
    parser.add_argument("--timeout-s", type=int, default=5, help="the function's timeout during the soak (5 s)")
    parser.add_argument("--fuzz-cases", type=int, default=10_000, help="hostile events for the handler (10,000)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--fast-moto", action="store_true", help="run the endpoint with localtwin.moto_speedups (default: stock moto)"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="for results.csv and function.log (build/soak)")
    args = parser.parse_args(argv)
    if args.records < 1 or not 1 <= args.shards <= 100 or args.fuzz_cases < 0:
        parser.error("--records must be >= 1, --shards 1-100, --fuzz-cases >= 0")
    if not 1 <= args.timeout_s <= 900:
        parser.error("--timeout-s must be 1-900 (Lambda's range)")
    try:
        plan = FaultPlan(
            throttle_share=args.throttle,
            kill_every=args.kill_every,
            timeouts=args.timeouts,
            bursts=args.bursts,
            hold_s=args.timeout_s + 2,
            expected_records=args.records,
            seed=args.seed,
        )
        settings = soak_settings(load_settings(), args.timeout_s)
    except (ValueError, SettingsError) as exc:
        parser.error(str(exc))
    options = ReplayOptions(
        records=args.records,
        shards=args.shards,
        source=args.source,
        out_dir=args.out,
        seed=args.seed,
        quarantine_queue=True,
        faults=plan,
        fast_moto=args.fast_moto,
    )
    started = time.perf_counter()
    result, status = replay_with_progress(options, settings, "soak")
    if result is None:
        return status
    checks = soak_checks(result, plan)
    print(format_soak(result, plan, checks, time.perf_counter() - started), flush=True)
    ok = all(check.ok for check in checks)
    if args.fuzz_cases:
        from testing.fuzz import format_report, run_fuzz

        report = run_fuzz(args.fuzz_cases, args.seed)
        print(format_report(report))
        ok = ok and report.ok
    print("soak: OK" if ok else "soak: FAILED (see FAIL and PROBLEM lines above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
