"""The shadow report (``make compare``): the candidate's results beside the live model's, joined by record.

Reads the candidate's results and the live results of the same records, joins them by
``record_id``, compares them with :func:`inference.shadow.compare_results` (the function's own
measure) and prints the report: records, agreement rate, confusion of live against candidate
labels, mean absolute difference of scores, each model's label counts and score quantiles. A
plot goes to ``build/compare.png`` (:mod:`rollout.plots`).

Where the results come from:

``--source local`` (default)
    the last ``make demo STRATEGY=shadow``: ``build/demo/results.csv`` and ``shadow.csv``,
    exported from the twin's results and shadow tables.
``--source aws``
    the deployed function's DynamoDB tables, ``RESULTS_TABLE`` and ``SHADOW_RESULTS_TABLE`` of
    ``deploy.toml``'s ``[function.environment]`` (or ``--results-table`` / ``--shadow-table``):
    the shadow table is scanned (the first ``--limit`` items a scan returns) and the live
    results of the same records are read with ``BatchGetItem``, 100 keys a call.

Exit status 0 with a report, 2 when there is nothing to compare (the message says what to run).

Usage: ``python -m rollout.compare [--source local|aws] [--demo-dir build/demo] [--plot build/compare.png]``
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.manifest import RESULT_FIELDS, Task
from inference.shadow import LABEL_FIELD, Comparison, compare_results, quantiles

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "build" / "demo"
PLOT = ROOT / "build" / "compare.png"
#: Keys per ``BatchGetItem`` call (DynamoDB's limit).
BATCH_GET_KEYS = 100


class NothingToCompare(ValueError):
    """No shadow results (or no live results for them); the message says what to run."""


@dataclass
class ShadowResults:
    """Live and candidate results of the same records, in the same order."""

    task: Task
    live: list[dict[str, Any]] = field(default_factory=list)
    candidate: list[dict[str, Any]] = field(default_factory=list)
    live_model: str = "?"
    candidate_model: str = "?"
    #: Shadow results without a live result (the live write failed, or it was not read).
    unmatched: int = 0


def result_task(document: Mapping[str, Any]) -> Task:
    """The task a result document is of, told by its fields (:data:`inference.manifest.RESULT_FIELDS`)."""
    if "cluster" in document:
        return "clusterer"
    if "value" in document:
        return "regressor"
    if "score" in document:
        return "outlier_detector"
    return "classifier"


def _model(document: Mapping[str, Any]) -> str:
    return f"{document.get('model_name', '?')} {document.get('model_version', '?')}"


def join(live: Mapping[str, Mapping[str, Any]], shadow: Iterable[Mapping[str, Any]]) -> ShadowResults:
    """Pair every shadow result with the live result of its ``record_id``.

    Raises
    ------
    NothingToCompare
        No shadow result has a live result.
    """
    pairs = []
    unmatched = 0
    for document in shadow:
        other = live.get(str(document["record_id"]))
        if other is None:
            unmatched += 1
        else:
            pairs.append((other, document))
    if not pairs:
        raise NothingToCompare(
            f"none of the {unmatched:,} shadow results has a live result to compare with"
            if unmatched
            else "no shadow results yet"
        )
    task = result_task(pairs[0][0])
    fields = RESULT_FIELDS[task]
    out = ShadowResults(task, live_model=_model(pairs[0][0]), candidate_model=_model(pairs[0][1]), unmatched=unmatched)
    for a, b in pairs:
        out.live.append({k: a[k] for k in fields if k in a})
        out.candidate.append({k: b[k] for k in fields if k in b})
    return out


def _csv_documents(path: Path) -> list[dict[str, Any]]:
    """An export of :func:`localtwin.replay.results.export_csv`, with numbers as floats."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        for key in ("probability", "score", "value"):
            if row.get(key) not in (None, ""):
                row[key] = float(row[key])
            else:
                row.pop(key, None)
    return rows


def read_local(demo_dir: Path = DEMO_DIR) -> ShadowResults:
    """The results of the last ``make demo STRATEGY=shadow`` (``results.csv`` and ``shadow.csv``).

    Raises
    ------
    NothingToCompare
        When the demo ran without a candidate, or not at all.
    """
    results, shadow = demo_dir / "results.csv", demo_dir / "shadow.csv"
    if not shadow.is_file() or not results.is_file():
        raise NothingToCompare(f"{shadow} not found: run `make demo STRATEGY=shadow` first")
    live = {row["record_id"]: row for row in _csv_documents(results)}
    return join(live, _csv_documents(shadow))


def read_aws(dynamodb: Any, results_table: str, shadow_table: str, limit: int = 100_000) -> ShadowResults:
    """The shadow table's items (up to ``limit``) and the live results of the same records.

    Parameters
    ----------
    dynamodb : botocore client
        A ``dynamodb`` client.
    results_table, shadow_table : str
        The tables ``RESULTS_TABLE`` and ``SHADOW_RESULTS_TABLE`` name.
    """
    from boto3.dynamodb.types import TypeDeserializer

    plain = TypeDeserializer().deserialize

    def document(item: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: plain(v) for k, v in item.items()}
        for key in ("probability", "score", "value"):  # DynamoDB gives numbers as Decimal
            if out.get(key) is not None:
                out[key] = _float_value(out[key])
        return out

    shadow: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=shadow_table):
        shadow += [document(item) for item in page.get("Items", [])]
        if len(shadow) >= limit:
            shadow = shadow[:limit]
            break
    live: dict[str, dict[str, Any]] = {}
    ids = sorted({str(d["record_id"]) for d in shadow})
    for start in range(0, len(ids), BATCH_GET_KEYS):
        keys: list[dict[str, Any]] = [{"record_id": {"S": rid}} for rid in ids[start : start + BATCH_GET_KEYS]]
        request: dict[str, Any] = {results_table: {"Keys": keys}}
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(results_table, []):
                found = document(item)
                live[str(found["record_id"])] = found
            request = response.get("UnprocessedKeys") or {}
    return join(live, shadow)


def _float_value(value: Any) -> Any:
    return [float(v) for v in value] if isinstance(value, list) else float(value)


def confusion(results: ShadowResults) -> Counter[tuple[str, str]]:
    """``(live label, candidate label) -> records`` (empty for a regressor)."""
    label = LABEL_FIELD.get(results.task)
    if label is None:
        return Counter()
    return Counter((str(a.get(label)), str(b.get(label))) for a, b in zip(results.live, results.candidate))


def format_report(results: ShadowResults, comparison: Comparison, plot: Path | None = None) -> str:
    """The report a person reads: a dozen lines."""
    lines = [
        f"Shadow report: candidate {results.candidate_model} beside live {results.live_model} "
        f"({results.task.replace('_', ' ')}), {comparison.records:,} records scored by both"
        + (f"; {results.unmatched:,} shadow results without a live result" if results.unmatched else ""),
    ]
    if comparison.agreement is not None:
        lines.append(
            f"  agreement      {comparison.agreement:.2%} ({comparison.agreed:,} of {comparison.records:,} "
            "records: the same label)"
        )
        pairs = confusion(results)
        labels = sorted(comparison.live_labels.keys() | comparison.candidate_labels.keys())
        width = max(8, *(len(label) for label in labels))
        lines.append("  live \\ cand    " + "".join(f"{label:>{width + 2}}" for label in labels))
        for a in labels:
            lines.append(f"  {a:<14}" + "".join(f"{pairs[a, b]:>{width + 2},}" for b in labels))
        lines.append(
            "  labels         live "
            + ", ".join(f"{k} {v:,}" for k, v in comparison.live_labels.most_common())
            + "; candidate "
            + ", ".join(f"{k} {v:,}" for k, v in comparison.candidate_labels.most_common())
        )
    if comparison.mean_abs_diff is not None:
        lines.append(f"  mean |diff|    {comparison.mean_abs_diff:.6g} (per record, live against candidate)")
    if comparison.live_scores and comparison.candidate_scores:
        for name, scores in (("scores live", comparison.live_scores), ("       cand.", comparison.candidate_scores)):
            q = quantiles(scores, 5)
            lines.append(
                f"  {name:<14} min {q[0]:.4g}, p25 {q[1]:.4g}, median {q[2]:.4g}, p75 {q[3]:.4g}, max {q[-1]:.4g}"
                if len(q) == 5
                else f"  {name:<14} {', '.join(f'{v:.4g}' for v in q)}"
            )
    if plot is not None:
        shown = plot.resolve().relative_to(ROOT) if plot.resolve().is_relative_to(ROOT) else plot
        lines.append(f"  plot           {shown}")
    lines.append("  then           `make promote` releases the candidate; `make reject` detaches it")
    return "\n".join(lines)


def report(results: ShadowResults, plot: Path | None = PLOT) -> str:
    """Compare, plot (when ``plot`` is a path) and format."""
    comparison = compare_results(results.task, results.live, results.candidate)
    if plot is not None:
        from rollout.plots import plot_comparison

        plot_comparison(results, comparison, plot)
    return format_report(results, comparison, plot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("local", "aws"), default="local")
    parser.add_argument("--demo-dir", type=Path, default=DEMO_DIR, help="local: the demo's output (build/demo)")
    parser.add_argument("--results-table", help="aws: default RESULTS_TABLE of deploy.toml")
    parser.add_argument("--shadow-table", help="aws: default SHADOW_RESULTS_TABLE of deploy.toml")
    parser.add_argument("--limit", type=int, default=100_000, help="aws: shadow results read at most (100,000)")
    parser.add_argument("--plot", type=Path, default=PLOT, help="the PNG written (build/compare.png)")
    args = parser.parse_args(argv)
    try:
        results = read_local(args.demo_dir) if args.source == "local" else _read_deployed(args)
    except NothingToCompare as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    print(report(results, args.plot))
    return 0


def _read_deployed(args: argparse.Namespace) -> ShadowResults:
    import boto3

    from release.settings import SettingsError, load_settings

    env: Mapping[str, str] = {}
    if not (args.results_table and args.shadow_table):
        try:
            env = load_settings().function.environment
        except SettingsError as exc:
            raise NothingToCompare(str(exc)) from None
    results_table = args.results_table or env.get("RESULTS_TABLE")
    shadow_table = args.shadow_table or env.get("SHADOW_RESULTS_TABLE")
    if not results_table or not shadow_table:
        raise NothingToCompare(
            "the AWS report joins two DynamoDB tables: set RESULTS_TABLE and SHADOW_RESULTS_TABLE in deploy.toml's "
            "[function.environment] (then `make bootstrap deploy`), or pass --results-table and --shadow-table"
        )
    return read_aws(boto3.client("dynamodb"), results_table, shadow_table, args.limit)


if __name__ == "__main__":
    sys.exit(main())
