"""rollout.compare: the shadow report from the deployed tables (moto) and from the twin's export."""

from __future__ import annotations

import boto3
import pytest
from inference.sinks import DynamoDBSink, ResultItem

from rollout.compare import NothingToCompare, join, main, read_aws, read_local, report

REGION = "us-east-1"


def items(labels: list[str], version: str, probability: float) -> list[ResultItem]:
    return [
        ResultItem(i, f"shard:{i}", str(i), "arn:aws:kinesis:us-east-1:1:stream/s", {"label": label, "probability": probability},
                   "sentiment", version)
        for i, label in enumerate(labels)
    ]  # fmt: skip


@pytest.mark.aws
def test_the_aws_report_joins_the_shadow_table_with_the_live_results(mocked_aws, tmp_path):
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for table in ("results", "shadow"):
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "record_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "record_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    live = ["fresh"] * 150 + ["rotten"] * 100  # more than one BatchGetItem call
    candidate = ["fresh"] * 120 + ["rotten"] * 130
    assert DynamoDBSink("results", dynamodb).write(items(live, "1.0.0", 0.9)) == set()
    assert DynamoDBSink("shadow", dynamodb).write(items(candidate, "1.1.0", 0.7)[:200]) == set()

    results = read_aws(dynamodb, "results", "shadow")

    assert (len(results.live), results.unmatched) == (200, 0)
    assert (results.live_model, results.candidate_model) == ("sentiment 1.0.0", "sentiment 1.1.0")
    text = report(results, tmp_path / "compare.png")
    assert "agreement      85.00% (170 of 200 records" in text  # records 120-149: fresh live, rotten candidate
    assert (tmp_path / "compare.png").stat().st_size > 0


def test_the_local_report_reads_the_demo_export_and_says_what_to_run_without_it(tmp_path, capsys):
    assert main(["--demo-dir", str(tmp_path), "--plot", str(tmp_path / "p.png")]) == 2
    assert "make demo STRATEGY=shadow" in capsys.readouterr().err
    header = "record_id,sequence_number,label,probability,model_name,model_version,source_arn\n"
    (tmp_path / "results.csv").write_text(header + "a,1,fresh,0.9,m,1,s\nb,2,rotten,0.8,m,1,s\n")
    (tmp_path / "shadow.csv").write_text(header + "a,1,fresh,0.6,m,2,s\nb,2,fresh,0.55,m,2,s\nc,3,fresh,0.5,m,2,s\n")
    results = read_local(tmp_path)
    assert (len(results.live), results.unmatched, results.candidate[1]) == (
        2,
        1,
        {"label": "fresh", "probability": 0.55},
    )
    assert main(["--demo-dir", str(tmp_path), "--plot", str(tmp_path / "p.png")]) == 0
    assert "agreement      50.00% (1 of 2 records" in capsys.readouterr().out


def test_regressor_results_are_compared_by_value():
    results = join({"a": {"record_id": "a", "value": 2.0}}, [{"record_id": "a", "value": 2.5}])
    assert results.task == "regressor"
    assert "mean |diff|    0.5" in report(results, None)
    with pytest.raises(NothingToCompare, match="no shadow results"):
        join({}, [])
