"""The demo (``make demo``): replay an ingest through the local twin of Lambda and its trigger.

Starts the embedded AWS endpoint, writes ``--records`` review records (about 1 %
malformed) to a Kinesis stream of ``--shards`` shards (or, with ``--source dynamodb``,
to a DynamoDB table with a stream, with some updates and deletes), runs the function
from the built zips in the local Lambda runtime, driven by the local event source
mapping with ``deploy.toml``'s settings, and prints a summary. The logic is in
:mod:`localtwin.replay`.

Exit status: 0 when every record was predicted, skipped or quarantined and the checks
passed; 1 otherwise; 130 when interrupted (the endpoint and the workers are stopped
either way).

The endpoint is stock moto; ``--fast-moto`` runs it with :mod:`localtwin.moto_speedups`
(in the endpoint's process only). ``--compare`` then replays the same ingest on the other
one and prints both throughputs and whether every result item is the same (exit 1 if not):
the benchmark beside its baseline in one run.

``--candidate ZIP`` attaches a candidate model layer in shadow (``make demo STRATEGY=shadow``:
files under ``candidate/``, :mod:`inference.shadow`); the demo then also prints the shadow
report (:mod:`rollout.compare`) and the candidate's EMF counts.

Usage: ``python -m localtwin.demo [--records 50000] [--shards 4] [--batch-size N]
[--source kinesis|dynamodb] [--environments N] [--out build/demo] [--fast-moto] [--compare]
[--candidate build/layers/candidate-layer.zip] [--snapstart | --no-snapstart]``

``--snapstart`` (``make demo SNAPSTART=1``) runs the local Lambda with SnapStart
(:mod:`localtwin.runtime.snapshot`): the summary then shows the restore times of the cold
starts next to the snapshot's one init.
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from localtwin.replay.results import differing_results
from localtwin.replay.run import OUT_DIR, ReplayOptions, ReplayResult, run_replay
from localtwin.replay.summary import format_comparison, format_summary
from release.settings import Settings, SettingsError, load_settings
from rollout.compare import NothingToCompare, read_local, report


def _stop_on_first_interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C: stop the run; a second Ctrl-C is ignored so the clean-up can finish."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _bar(total: int, desc: str) -> tqdm:
    """A bar on stderr, redrawn at most twice a second, and only on a terminal (``disable=None``)."""
    return tqdm(total=total, desc=desc, unit=" rec", file=sys.stderr, mininterval=0.5, disable=None)


class _Bars:
    """Two progress bars on stderr: writing the ingest, then replaying it (nothing when stderr is not a terminal)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.writing: tqdm | None = None
        self.replaying: tqdm | None = None

    def written(self, n: int) -> None:
        if self.writing is None:
            self.writing = _bar(self.total, "writing the ingest")
        self.writing.update(n)
        if self.writing.n >= self.total:
            self.writing.close()

    def handled(self, n: int) -> None:
        if self.replaying is None:
            self.replaying = _bar(self.total, "replaying")
        self.replaying.update(n - self.replaying.n)
        if self.replaying.n >= self.total:
            self.replaying.close()

    def close(self) -> None:
        for bar in (self.writing, self.replaying):
            if bar is not None:
                bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="records to write (default 50,000)")
    parser.add_argument("--shards", type=int, default=4, help="Kinesis shards (default 4)")
    parser.add_argument("--batch-size", type=int, help="the mapping's BatchSize (default: deploy.toml's)")
    parser.add_argument("--source", choices=("kinesis", "dynamodb"), default="kinesis")
    parser.add_argument(
        "--environments", type=int, help="execution environments (default: shards x parallelization factor)"
    )
    parser.add_argument("--poison-share", type=float, default=0.01, help="share of malformed records (0.01)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="for results.csv and function.log (build/demo)")
    parser.add_argument(
        "--fast-moto",
        action="store_true",
        help="run the endpoint with moto's slow paths replaced (localtwin.moto_speedups); default: stock moto",
    )
    parser.add_argument(
        "--snapstart",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SnapStart in the local Lambda: init once into a snapshot, every cold start a restore "
        "(default: deploy.toml's [function] snap_start)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="then replay the same ingest on the other moto (stock / --fast-moto) and print both figures and "
        "whether every result item is the same",
    )
    parser.add_argument("--candidate", type=Path, help="a candidate model layer zip to run in shadow")
    args = parser.parse_args(argv)
    if args.records < 1 or not 1 <= args.shards <= 100 or not 0 <= args.poison_share <= 1:
        parser.error("--records must be >= 1, --shards 1-100 and --poison-share 0-1")
    if args.batch_size is not None and not 1 <= args.batch_size <= 10_000:
        parser.error("--batch-size must be 1-10000 (Lambda's BatchSize range)")
    if args.environments is not None and args.environments < 1:
        parser.error("--environments must be >= 1")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    options = ReplayOptions(
        records=args.records,
        shards=args.shards,
        batch_size=args.batch_size,
        source=args.source,
        poison_share=args.poison_share,
        max_environments=args.environments,
        out_dir=args.out,
        fast_moto=args.fast_moto,
        candidate_zip=args.candidate,
        snap_start=args.snapstart if args.snapstart is not None else settings.function.snap_start != "None",
    )
    result, status = replay_with_progress(options, settings, "demo")
    if result is None:
        return status
    print(format_summary(result), flush=True)
    if args.candidate is not None:
        print("\n" + shadow_summary(result), flush=True)
    if not args.compare:
        return 0 if result.ok else 1
    other_moto = "stock-moto" if args.fast_moto else "fast-moto"
    other_options = replace(options, fast_moto=not args.fast_moto, out_dir=args.out / other_moto)
    other, status = replay_with_progress(other_options, settings, "demo")
    if other is None:
        return status
    print(f"\nThe same ingest on {other_moto.replace('-', ' ')}:\n" + format_summary(other))
    print("\n" + format_comparison(result, other))
    same = not differing_results(result.csv_path, other.csv_path)
    return 0 if result.ok and other.ok and same else 1


def shadow_summary(result: ReplayResult) -> str:
    """The candidate's EMF counts over the replay, then the shadow report (:mod:`rollout.compare`)."""
    counts = result.function.shadow
    lines = [
        f"Candidate in shadow: scored {counts['ShadowRecords']:,} records beside the live model; errors: "
        f"load {counts['ShadowLoadErrors']:,} batches, predict {counts['ShadowPredictErrors']:,} batches, "
        f"shadow writes {counts['ShadowWriteErrors']:,} records; skipped {counts['ShadowSkipped']:,} records "
        "(the function's EMF metrics)"
    ]
    try:
        lines.append(report(read_local(Path(result.options.out_dir)), Path(result.options.out_dir) / "compare.png"))
    except NothingToCompare as exc:
        lines.append(f"  no report: {exc}")
    return "\n".join(lines)


def replay_with_progress(options: ReplayOptions, settings: Settings, prog: str) -> tuple[ReplayResult | None, int]:
    """:func:`run_replay` with progress bars; Ctrl-C and failures end it cleanly.

    Returns
    -------
    (result, status)
        The result, or ``None`` with the exit status (130 interrupted, 1 failed) once
        the reason is printed to stderr as ``<prog>: ...``.
    """
    signal.signal(signal.SIGINT, _stop_on_first_interrupt)
    bars = _Bars(options.records)
    try:
        return run_replay(options, settings, write_progress=bars.written, progress=bars.handled), 0
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; the endpoint and the workers are stopped", file=sys.stderr)
        return None, 130
    except (FileNotFoundError, TimeoutError, RuntimeError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None, 1
    finally:
        bars.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    sys.exit(main())
