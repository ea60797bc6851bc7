"""The replay's results: the results table scanned and exported to CSV, and every record checked.

The run is good when every good record has exactly one result, every malformed one was
quarantined, every delete was skipped and the counts the function's metrics give agree
(:func:`check_records`).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localtwin.embedded_aws import EmbeddedAWS
from localtwin.replay.ingest import DELETE_TAG, Expect
from localtwin.replay.tally import FunctionTally

CSV_COLUMNS = ("record_id", "sequence_number", "label", "probability", "model_name", "model_version", "source_arn")


def scan_results(aws: EmbeddedAWS, table: str) -> list[dict[str, Any]]:
    """Every item of the results table (a paginated Scan), as plain values."""
    from boto3.dynamodb.types import TypeDeserializer

    plain = TypeDeserializer().deserialize
    items: list[dict[str, Any]] = []
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        items.extend({key: plain(value) for key, value in item.items()} for item in page["Items"])
    return items


def export_csv(items: list[dict[str, Any]], path: Path) -> None:
    """Write the results to ``path``, one row per record, in stream order per shard."""

    def order(item: Mapping[str, Any]) -> tuple[str, int, str]:
        sequence = str(item.get("sequence_number", ""))
        return item["record_id"].rpartition(":")[0], int(sequence) if sequence.isdigit() else 0, item["record_id"]

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sorted(items, key=order))


def check_records(
    expect: list[Expect], seen: dict[str, int], result_ids: set[str], tally: FunctionTally, written: int
) -> list[str]:
    """Per record and in total: what is wrong (empty: nothing)."""
    want_results, want_quarantined = set(), set()
    for rid, tag in seen.items():
        if tag != DELETE_TAG:
            if expect[tag] == "predicted":
                want_results.add(rid)
            elif expect[tag] == "quarantined":
                want_quarantined.add(rid)
    problems = []
    if len(seen) != written:
        problems.append(f"{len(seen):,} distinct records reached the function; {written:,} were written")
    if missing := want_results - result_ids:
        problems.append(f"{len(missing):,} good records have no result (e.g. {sorted(missing)[:3]})")
    if extra := result_ids - want_results:
        problems.append(f"{len(extra):,} results are not for a good record (e.g. {sorted(extra)[:3]})")
    if missed := want_quarantined - set(tally.quarantined):
        problems.append(f"{len(missed):,} malformed records were not quarantined (e.g. {sorted(missed)[:3]})")
    if wrong := set(tally.quarantined) - want_quarantined:
        problems.append(f"{len(wrong):,} records were quarantined that are not malformed (e.g. {sorted(wrong)[:3]})")
    metrics, deletes = tally.metrics, sum(1 for tag in seen.values() if tag == DELETE_TAG)
    for name, logged, actual in (
        ("predictions", metrics["RecordsPredicted"], len(result_ids)),
        ("quarantined records", metrics["RecordsQuarantined"], len(tally.quarantined)),
        ("skipped records", metrics["RecordsSkipped"], deletes),
    ):
        if logged != actual:
            problems.append(f"the function's metrics count {logged:,} {name}; {actual:,} found")
    return problems
