"""The replay's results: the results table exported, written to CSV, and every record checked.

The table is read back as DynamoDB exports a table to S3 (``ExportTableToPointInTime``,
point-in-time recovery turned on first; ``DYNAMODB_JSON``: gzipped files of one
``{"Item": ...}`` per line under ``<prefix>/AWSDynamoDB/<export>/data/``), not scanned:
moto's Scan sorts and walks the whole table for every page (O(N²) for N items) and its
response serialiser costs about 1 ms per item, as does BatchGetItem's
(docs/moto-performance.md); its export writes every item once.

The run is good when every good record has exactly one result, every malformed one was
quarantined, every delete was skipped and the counts the function's metrics give agree
(:func:`check_records`).
"""

from __future__ import annotations

import csv
import gzip
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localtwin.embedded_aws import EmbeddedAWS
from localtwin.replay.ingest import DELETE_TAG, Expect
from localtwin.replay.tally import FunctionTally

CSV_COLUMNS = ("record_id", "sequence_number", "label", "probability", "model_name", "model_version", "source_arn")


def export_results(aws: EmbeddedAWS, table: str, bucket: str, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Every item of the results table, as plain values, through a table export to S3.

    Creates ``bucket``, turns on the table's point-in-time recovery, exports the table
    (``DYNAMODB_JSON``), waits for the export and reads its data files.

    Raises
    ------
    RuntimeError
        If the export fails or does not complete within ``timeout_s``.
    """
    from boto3.dynamodb.types import TypeDeserializer

    plain = TypeDeserializer().deserialize
    dynamodb, s3 = aws.client("dynamodb"), aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    dynamodb.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
    export = dynamodb.export_table_to_point_in_time(
        TableArn=arn, S3Bucket=bucket, S3Prefix="results", ExportFormat="DYNAMODB_JSON"
    )["ExportDescription"]
    deadline = time.monotonic() + timeout_s
    while export["ExportStatus"] == "IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.1)
        export = dynamodb.describe_export(ExportArn=export["ExportArn"])["ExportDescription"]
    if export["ExportStatus"] != "COMPLETED":
        detail = export.get("FailureMessage") or f"still {export['ExportStatus']} after {timeout_s:.0f} s"
        raise RuntimeError(f"the export of table {table} to s3://{bucket} failed: {detail}")
    items: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="results/AWSDynamoDB/"):
        for entry in page.get("Contents", []):
            if "/data/" not in entry["Key"] or not entry["Key"].endswith(".gz"):
                continue  # manifests
            body = gzip.decompress(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
            for line in body.decode("utf-8").splitlines():
                if line.strip():
                    items.append({k: plain(v) for k, v in json.loads(line)["Item"].items()})
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
    expect: list[Expect],
    seen: dict[str, int],
    result_ids: set[str],
    tally: FunctionTally,
    written: int,
    filtered: int = 0,
) -> list[str]:
    """Per record and in total: what is wrong (empty: nothing); ``filtered`` records never reach the function."""
    want_results, want_quarantined = set(), set()
    for rid, tag in seen.items():
        if tag != DELETE_TAG:
            if expect[tag] == "predicted":
                want_results.add(rid)
            elif expect[tag] == "quarantined":
                want_quarantined.add(rid)
    problems = []
    if len(seen) + filtered != written:
        problems.append(
            f"{len(seen):,} distinct records reached the function and {filtered:,} were filtered out; "
            f"{written:,} were written"
        )
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


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of an export written by :func:`export_csv`."""
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def differing_results(path_a: Path, path_b: Path) -> list[str]:
    """Record ids whose rows differ between two exports (in any column, or present in one only)."""
    rows_a = {row["record_id"]: row for row in read_csv(path_a)}
    rows_b = {row["record_id"]: row for row in read_csv(path_b)}
    return sorted(rid for rid in rows_a.keys() | rows_b.keys() if rows_a.get(rid) != rows_b.get(rid))
