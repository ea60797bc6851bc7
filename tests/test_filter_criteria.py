"""``filter_criteria`` end to end: deploy.toml validation, ``make deploy``'s mappings (moto), the template,
and the local event source mapping, which filters as Lambda does (records dropped, counted, never invoked)."""

from __future__ import annotations

import base64
import json
import tomllib
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from infra.template import build_template
from localtwin.embedded_aws import EmbeddedAWS
from localtwin.mapping.engine import EventSourceMapping
from localtwin.runtime.report import InvokeResult, Report
from release.aws import Clients
from release.deploy import deploy_mappings, filter_criteria, mapping_options
from release.filter_patterns import DROP_REMOVE_EVENTS, pattern_json
from release.settings import EventSource, SettingsError, load_settings, parse_settings
from tests.helpers import write_zip

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROOT = Path(__file__).resolve().parents[1]
RATED = {"data": {"rating": [{"numeric": [">=", 3]}]}}


def settings_with(sources: list[dict[str, Any]]) -> Any:
    """deploy.toml with its ``[[event_sources]]`` replaced by ``sources`` (each over the file's first entry)."""
    document = tomllib.loads((ROOT / "deploy.toml").read_text())
    base = document["event_sources"][0]
    document["event_sources"] = [{**base, **source} for source in sources]
    return parse_settings(document, ROOT / "deploy.toml")


DDB_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/reviews/stream/2026-11-21T09:00:00.000"


# --- settings ---------------------------------------------------------------------------------------


@pytest.mark.unit
def test_defaults_per_source_type_and_how_to_turn_the_dynamodb_one_off() -> None:
    settings = settings_with([{}, {"type": "dynamodb", "source_arn": DDB_ARN}])
    kinesis, ddb = settings.event_sources
    assert kinesis.filter_criteria is None and kinesis.patterns == ()
    assert ddb.filter_criteria is None and ddb.patterns == (DROP_REMOVE_EVENTS,)
    off = settings_with([{"type": "dynamodb", "source_arn": DDB_ARN, "filter_criteria": []}]).event_sources[0]
    assert off.filter_criteria == () and off.patterns == ()


@pytest.mark.unit
def test_patterns_as_json_strings_or_tables() -> None:
    [source] = settings_with(
        [{"filter_criteria": [json.dumps(RATED), {"partitionKey": [{"prefix": "eu-"}]}]}]
    ).event_sources
    assert source.filter_criteria == (pattern_json(RATED), '{"partitionKey":[{"prefix":"eu-"}]}')
    assert source.patterns[0] == RATED


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"data": {}}', "must be a list of patterns"),
        ([json.dumps(RATED)] * 6, "Lambda allows 5 per mapping"),
        ([42], "must be a JSON string or a table"),
        (['{"data": {"rating": [{"numeric": [">", "3"]}]}}'], r"#1 filter_criteria pattern 1 data\.rating: numeric"),
        ([{"eventName": ["INSERT"]}], "a kinesis record has no such field"),
    ],
)
def test_bad_filter_criteria_name_the_entry_and_the_fix(value: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_with([{"filter_criteria": value}])


# --- make deploy (moto) -----------------------------------------------------------------------------


@pytest.fixture
def world(mocked_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A function with a live alias, a Kinesis stream, a DynamoDB stream and a queue in moto."""
    import boto3

    monkeypatch.setattr("release.aws._sleep", lambda seconds: None)
    clients = Clients.from_session(boto3.Session(region_name=REGION))
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    zip_path = write_zip(tmp_path / "f.zip", {"lambda_function.py": b"def lambda_handler(e, c):\n    return {}\n"})
    lam = clients.lambda_
    arn = lam.create_function(
        FunctionName="stream-inference",
        Runtime="python3.12",
        Role=role,
        Handler="lambda_function.lambda_handler",
        Code={"ZipFile": zip_path.read_bytes()},
    )["FunctionArn"]
    version = lam.publish_version(FunctionName="stream-inference")["Version"]
    lam.create_alias(FunctionName="stream-inference", Name="live", FunctionVersion=version)
    kinesis = boto3.client("kinesis", region_name=REGION)
    kinesis.create_stream(StreamName="reviews", ShardCount=1)
    stream = kinesis.describe_stream(StreamName="reviews")["StreamDescription"]["StreamARN"]
    table = boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="reviews",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="failures")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"clients": clients, "alias": f"{arn}:live", "stream": stream, "table": table, "queue": queue}


def mappings(world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    listed = world["clients"].lambda_.list_event_source_mappings(FunctionName=world["alias"])["EventSourceMappings"]
    return {m["EventSourceArn"]: m for m in listed}


def patterns_of(mapping: dict[str, Any]) -> list[Any]:
    return [json.loads(f["Pattern"]) for f in (mapping.get("FilterCriteria") or {}).get("Filters", [])]


@pytest.mark.aws
def test_deploy_creates_updates_and_clears_filter_criteria(world: dict[str, Any]) -> None:
    def sources(kinesis: dict[str, Any], ddb: dict[str, Any]) -> Any:
        common = {"on_failure_destination_arn": world["queue"]}
        return settings_with(
            [
                {"source_arn": world["stream"], **common, **kinesis},
                {"type": "dynamodb", "source_arn": world["table"], **common, **ddb},
            ]
        )

    first = sources({"filter_criteria": [RATED]}, {})
    changes, _ = deploy_mappings(first, world["alias"], clients=world["clients"])
    assert len(changes) == 2 and all(c.startswith("created mapping") for c in changes)
    found = mappings(world)
    assert patterns_of(found[world["stream"]]) == [RATED]
    assert patterns_of(found[world["table"]]) == [DROP_REMOVE_EVENTS]  # the default, applied
    assert deploy_mappings(first, world["alias"], clients=world["clients"]) == ([], [])  # idempotent

    # The Kinesis entry's filter removed, the DynamoDB default turned off: both cleared on AWS.
    second = sources({}, {"filter_criteria": []})
    changes, _ = deploy_mappings(second, world["alias"], clients=world["clients"])
    assert len(changes) == 2 and all("FilterCriteria: 1 -> 0 pattern(s)" in c for c in changes)
    assert all(patterns_of(m) == [] for m in mappings(world).values())
    assert deploy_mappings(second, world["alias"], clients=world["clients"]) == ([], [])

    third = sources({"filter_criteria": [RATED, {"partitionKey": ["vip"]}]}, {})
    changes, _ = deploy_mappings(third, world["alias"], clients=world["clients"])
    assert any("FilterCriteria: 0 -> 2 pattern(s)" in c for c in changes)
    assert patterns_of(mappings(world)[world["stream"]]) == [RATED, {"partitionKey": ["vip"]}]


@pytest.mark.unit
def test_the_template_carries_the_same_filter_criteria() -> None:
    settings = settings_with([{"filter_criteria": [RATED]}, {"type": "dynamodb", "source_arn": DDB_ARN}])
    resources = build_template(settings)["Resources"]
    [function] = [r for r in resources.values() if r["Type"] == "AWS::Serverless::Function"]
    events = {
        e["Properties"]["Stream"]: e["Properties"]
        for e in function["Properties"]["Events"].values()
        if "Stream" in e["Properties"]
    }
    for source in settings.event_sources:
        assert events[source.source_arn]["FilterCriteria"] == filter_criteria(source)
    off = settings_with([{"filter_criteria": []}]).event_sources[0]
    assert "FilterCriteria" not in mapping_options(off)


# --- the local event source mapping ---------------------------------------------------------------------


class Recorder:
    """An invoker that accepts every batch and keeps what it was given."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def invoke(self, event: dict[str, Any]) -> InvokeResult:
        self.batches.append(event["Records"])
        report = Report(str(uuid.uuid4()), 2.0, 2, 1024, 90, None, 1.0)
        return InvokeResult({"batchItemFailures": []}, None, report, cold=False)


@pytest.fixture(scope="module")
def twin_aws() -> Any:
    with EmbeddedAWS() as embedded:
        yield embedded


def local_source(kind: str, arn: str, queue_arn: str, **fields: Any) -> EventSource:
    source = EventSource(type=kind, source_arn=arn, on_failure_destination_arn=queue_arn)  # type: ignore[arg-type]
    return replace(source, batch_size=10, maximum_batching_window_s=0, maximum_record_age_s=-1, **fields)


@pytest.mark.aws
def test_the_local_mapping_drops_what_lambda_would_and_moves_the_checkpoint(twin_aws: EmbeddedAWS) -> None:
    suffix = uuid.uuid4().hex[:8]
    arn = twin_aws.create_kinesis_stream(f"filtered-{suffix}", 1)
    _, queue_arn = twin_aws.create_queue(f"failures-{suffix}")
    payloads = [json.dumps({"text": f"r{i}", "rating": i % 5}).encode() for i in range(20)]
    payloads += [b"not json", b"\x1f\x8b\x08\x00"]
    entries = [{"PartitionKey": f"k{i}", "Data": data} for i, data in enumerate(payloads)]
    written = twin_aws.client("kinesis").put_records(StreamARN=arn, Records=entries)["Records"]
    recorder = Recorder()
    source = local_source("kinesis", arn, queue_arn, filter_criteria=(pattern_json(RATED),))
    esm = EventSourceMapping(source, recorder, client_factory=twin_aws.client, poll_interval_s=0.02)
    stats = esm.run_until_drained(len(payloads), timeout_s=20)
    delivered = [json.loads(base64.b64decode(r["kinesis"]["data"])) for b in recorder.batches for r in b]
    assert [d["rating"] for d in delivered] == [i % 5 for i in range(20) if i % 5 >= 3]
    assert stats.records_filtered == 20 - len(delivered) + 2  # the two non-JSON payloads included
    assert stats.records_succeeded == len(delivered) and stats.records_handled == len(payloads)
    assert stats.invocations == len(recorder.batches) == 1  # 8 records: one batch of up to 10
    assert list(esm.checkpoints.values()) == [written[-1]["SequenceNumber"]]  # past the filtered tail


@pytest.mark.aws
def test_the_local_dynamodb_mapping_drops_remove_events_by_default(twin_aws: EmbeddedAWS) -> None:
    table = f"filtered-{uuid.uuid4().hex[:8]}"
    stream_arn = twin_aws.create_table_with_stream(table)
    _, queue_arn = twin_aws.create_queue(f"{table}-failures")
    dynamodb = twin_aws.client("dynamodb")
    for i in range(3):
        dynamodb.put_item(TableName=table, Item={"id": {"S": f"item-{i}"}, "text": {"S": "t"}})
    dynamodb.delete_item(TableName=table, Key={"id": {"S": "item-1"}})
    by_default, turned_off = Recorder(), Recorder()
    for recorder, fields in ((by_default, {}), (turned_off, {"filter_criteria": ()})):
        source = local_source("dynamodb", stream_arn, queue_arn, **fields)
        esm = EventSourceMapping(source, recorder, client_factory=twin_aws.client, poll_interval_s=0.02)
        stats = esm.run_until_drained(4, timeout_s=20)
        names = [r["eventName"] for batch in recorder.batches for r in batch]
        if recorder is by_default:
            assert names == ["INSERT"] * 3 and stats.records_filtered == 1
        else:
            assert names == ["INSERT"] * 3 + ["REMOVE"] and stats.records_filtered == 0


@pytest.mark.unit
def test_settings_file_example_parses() -> None:
    load_settings(ROOT / "deploy.toml")


@pytest.mark.unit
def test_a_mapping_of_another_type_than_its_entry_gets_that_types_default_filter() -> None:
    settings = settings_with([{"filter_criteria": [RATED]}])
    esm = EventSourceMapping.from_settings(Recorder(), settings, source_type="dynamodb", source_arn=DDB_ARN)
    assert esm.source.type == "dynamodb" and esm.patterns == (DROP_REMOVE_EVENTS,)
    same = EventSourceMapping.from_settings(Recorder(), settings, source_type="kinesis")
    assert same.patterns == (RATED,)


@pytest.mark.unit
def test_the_demo_prices_what_the_filter_saved_at_the_runs_rates() -> None:
    from localtwin.mapping.judge import Verdict
    from localtwin.mapping.stats import Invocation, MappingStats
    from localtwin.replay.summary import filtering_savings, ingest_cost

    stats = MappingStats(records_filtered=50)
    for i in range(4):  # 4 invocations of 100 records, 10 ms billed each
        result = InvokeResult({}, None, Report(f"r{i}", 10.0, 10, 1024, 90, None, 5.0), cold=False)
        stats.invocation_log.append(Invocation("s", 0, "1", "2", 100, 1000, 0, Verdict("success"), 10.0, result))
    records, invocations, saved = filtering_savings(stats, 1024)
    _, prices = ingest_cost(stats, 1024)
    assert records == 50 and invocations == pytest.approx(4 * 50 / 400)
    assert saved["x86_64"] == pytest.approx(prices["x86_64"] * 50 / 400)
    assert filtering_savings(MappingStats(), 1024)[1:] == (0.0, {"x86_64": 0.0, "arm64": 0.0})
