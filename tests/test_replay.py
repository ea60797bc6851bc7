"""The demo's replay (``localtwin.replay``, ``localtwin.demo``): small runs end to end, and the checks.

The end-to-end runs use the function zip and the model layer built from this checkout
(into a temporary folder) and the dependencies layer from ``build/``, on the embedded
endpoint, through the local event source mapping and runtime, as ``make demo`` does.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

import localtwin.demo as demo
from localtwin.replay.ingest import DELETE_TAG, DYNAMODB_POISON, KINESIS_POISON, dynamodb_ingest, kinesis_ingest
from localtwin.replay.results import check_records, differing_results
from localtwin.replay.run import ReplayOptions, ReplayResult, run_replay
from localtwin.replay.tally import FunctionTally


def options(zips: tuple[Path, list[Path], Path], **kwargs: object) -> ReplayOptions:
    """Replay options for conftest's ``zips``, with a ``demo`` folder beside its work folder
    (the zips are extracted there once) and fresh resource names."""
    function_zip, layers, workdir = zips
    base = ReplayOptions(
        function_zip=function_zip,
        layer_zips=tuple(layers),
        out_dir=workdir.parent / "demo",
        suffix=f"-{uuid.uuid4().hex[:8]}",
    )
    return replace(base, **kwargs)  # type: ignore[arg-type]


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def assert_accounted(result: ReplayResult) -> None:
    assert result.problems == []
    assert result.ok and result.lost == 0 and result.given_up == 0 and result.on_failure_messages == 0
    assert result.predicted + result.skipped + result.filtered + result.quarantined == result.written
    assert (result.predicted, result.quarantined, result.skipped + result.filtered) == (
        result.expected["predicted"],
        result.expected["quarantined"],
        result.expected["skipped"],
    )
    metrics = result.function.metrics
    assert metrics["RecordsIn"] == result.written - result.filtered + metrics["RecordsRetried"]
    assert result.stats.records_in == result.stats.records_succeeded + result.filtered == result.written
    rows = csv_rows(result.csv_path)
    ids = [row["record_id"] for row in rows]
    assert len(ids) == len(set(ids)) == result.predicted  # exactly one result per good record
    assert {row["label"] for row in rows} <= {"fresh", "rotten"}
    assert "DynamoDB.BatchWriteItem" in result.replay_requests


# --- end to end --------------------------------------------------------------------------------


@pytest.mark.twin
@pytest.mark.slow
def test_demo_kinesis_end_to_end(zips, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    runs: list[ReplayResult] = []

    def with_these_zips(opts: ReplayOptions, *args: object, **kwargs: object) -> ReplayResult:
        ours = options(zips)
        opts = replace(opts, function_zip=ours.function_zip, layer_zips=ours.layer_zips, out_dir=ours.out_dir)
        runs.append(run_replay(replace(opts, suffix=ours.suffix), *args, **kwargs))  # type: ignore[arg-type]
        return runs[-1]

    monkeypatch.setattr(demo, "run_replay", with_these_zips)
    assert demo.main(["--records", "600", "--shards", "2", "--poison-share", "0.05"]) == 0
    [result] = runs
    assert_accounted(result)
    assert result.shards == 2 and result.environments == 2 and result.batch_size == 100
    assert result.quarantined > 0 and result.skipped == 0
    reasons = Counter(reason.split(" (")[0] for reason in result.function.quarantined.values())
    assert len(reasons) == len(KINESIS_POISON)  # every kind of malformed record, each with its reason
    assert result.stats.cold_starts == 2 and result.stats.invocations >= 6
    captured = capsys.readouterr()
    out = captured.out
    assert "\r" not in captured.err and "replaying" not in captured.err  # no progress bar off a terminal
    for pattern in (
        r"records in +600\n",
        r"lost +0 +OK",
        r"x86_64 \$0\.\d+, arm64 \$0\.\d+",
        r"\d+ items, one per good record",
        r"results\.csv",
        r"iterator age +p50 [\d,]+ ms, p95 [\d,]+ ms, max [\d,]+ ms",
        r"unaccounted +-?\d+\.\d core-s",
        r"invocations +[\d.]+ s +summed",
    ):
        assert re.search(pattern, out), pattern


@pytest.mark.twin
@pytest.mark.slow
def test_dynamodb_stream_end_to_end(zips) -> None:
    result = run_replay(options(zips, records=400, source="dynamodb", poison_share=0.05, change_share=0.05))
    assert_accounted(result)
    # REMOVE events dropped by the source's default filter (never delivered), bad items quarantined
    assert result.filtered > 0 and result.skipped == 0 and result.quarantined > 0
    assert result.source_arn.startswith("arn:aws:dynamodb:") and "/stream/" in result.source_arn
    kinds = Counter(reason.split(": ")[-1].split(",")[0] for reason in result.function.quarantined.values())
    assert len(kinds) == len(DYNAMODB_POISON)


def test_stock_and_sped_up_moto_give_the_same_results(zips) -> None:
    """The one place sped-up moto runs in the replay: the same ingest on both, every result item compared."""
    stock = run_replay(options(zips, records=500, shards=2, poison_share=0.05))
    fast = run_replay(replace(stock.options, fast_moto=True, out_dir=stock.options.out_dir / "fast-moto"))
    assert_accounted(stock)
    assert_accounted(fast)
    stock_rows, fast_rows = csv_rows(stock.csv_path), csv_rows(fast.csv_path)
    assert len(stock_rows) == stock.predicted > 400
    key = lambda row: row["record_id"]  # noqa: E731
    assert sorted(stock_rows, key=key) == sorted(fast_rows, key=key)  # every column of every item
    assert not stock.options.fast_moto and fast.options.fast_moto
    assert differing_results(stock.csv_path, fast.csv_path) == []


# --- the ingest and the checks ---------------------------------------------------------------------


def test_kinesis_ingest_is_repeatable_and_tagged() -> None:
    expect, pairs = kinesis_ingest(2000, 0.05, seed=3)
    assert (expect, pairs) == kinesis_ingest(2000, 0.05, seed=3)
    assert [key for key, _ in pairs] == [f"review-{i}" for i in range(2000)]
    assert 50 < expect.count("quarantined") < 150 and expect.count("predicted") + expect.count("quarantined") == 2000


def test_dynamodb_ingest_has_inserts_updates_and_deletes() -> None:
    expect, requests = dynamodb_ingest(3000, 0.02, 0.05, seed=3)
    deletes = [r for r in requests if "DeleteRequest" in r]
    puts = [r["PutRequest"]["Item"] for r in requests if "PutRequest" in r]
    assert len(deletes) == expect.count("skipped") > 0
    assert len({item["id"]["S"] for item in puts}) < len(puts)  # some puts overwrite a live item: MODIFY
    assert all(
        int(item["op"]["N"]) == i
        for i, item in enumerate(r.get("PutRequest", {}).get("Item") for r in requests)
        if item
    )
    deleted = [r["DeleteRequest"]["Key"]["id"]["S"] for r in deletes]
    assert len(set(deleted)) == len(deleted)  # a delete always removes a live item: one REMOVE event each


def test_check_records_names_what_is_wrong() -> None:
    expect = ["predicted", "predicted", "quarantined", "skipped"]
    seen = {"a": 0, "b": 1, "c": 2, "d": DELETE_TAG}
    good = FunctionTally(
        Counter(RecordsPredicted=2, RecordsQuarantined=1, RecordsSkipped=1), {"c": "data is not valid JSON"}
    )
    assert check_records(expect, seen, {"a", "b"}, good, 4) == []
    problems = check_records(expect, seen, {"a", "c"}, good, 5)
    assert any("5 were written" in p for p in problems)
    assert any("1 good records have no result" in p and "'b'" in p for p in problems)
    assert any("1 results are not for a good record" in p and "'c'" in p for p in problems)
    unquarantined = FunctionTally(Counter(RecordsPredicted=2, RecordsSkipped=1), {})
    assert any(
        "malformed records were not quarantined" in p for p in check_records(expect, seen, {"a", "b"}, unquarantined, 4)
    )
