"""Result sinks and quarantines against moto: what lands where, and what is reported for retry."""

from __future__ import annotations

import base64
import json
import logging
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from inference import sinks
from inference.app import App, ConfigError
from inference.batch import process_batch
from inference.quarantine import MAX_ATTACHED_RECORD_BYTES, QuarantineItem, S3Quarantine, SQSQuarantine
from inference.sinks import BATCH_ATTEMPTS, DynamoDBSink, KinesisSink, ResultItem, S3Sink

from testing.events import SAMPLE_TEXTS, kinesis_event, kinesis_record

pytestmark = pytest.mark.aws

REGION = "us-east-1"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:123456789012:stream/reviews"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def aws(mocked_aws, monkeypatch):
    """moto for the duration of the test (``mocked_aws``); no real sleeping between the
    sinks' retry attempts."""
    monkeypatch.setattr(sinks, "_backoff", lambda attempt: None)


@pytest.fixture
def restore_logging():
    """App.from_env installs a handler on the ``inference`` logger; undo it afterwards."""
    logger = logging.getLogger("inference")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


class Wrapped:
    """A boto3 client with some methods replaced; everything else goes to the real one."""

    def __init__(self, real: Any, **overrides: Any) -> None:
        self._real = real
        self._overrides = overrides
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._real, name)


def create_results_table(name: str = "results") -> None:
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "record_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "record_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def scan_all(table: str) -> list[dict[str, Any]]:
    resource = boto3.resource("dynamodb").Table(table)
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = resource.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def result_items(n: int, probability: float | None = 0.75, label: Any = "fresh") -> list[ResultItem]:
    return [
        ResultItem(
            i, f"rec-{i:03d}", str(1000 + i), STREAM_ARN, {"label": label, "probability": probability}, "m", "9.9.9"
        )
        for i in range(n)
    ]


def texts(n: int) -> list[str]:
    return [SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)] for i in range(n)]


def sequences(event: dict) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


# --------------------------------------------------------------------------- DynamoDB


def test_dynamodb_sink_writes_one_typed_item_per_record(aws):
    create_results_table()
    items = result_items(60)  # more than one BatchWriteItem call (25 per call)
    items[7].outputs["probability"] = None  # a classifier without predict_proba
    items[8].outputs["label"] = 2.5  # float labels must become Decimal too

    assert DynamoDBSink("results").write(items) == set()

    stored = {row["record_id"]: row for row in scan_all("results")}
    assert sorted(stored) == [item.record_id for item in items]
    first = stored["rec-000"]
    assert first["label"] == "fresh"
    assert isinstance(first["probability"], Decimal)
    assert first["probability"] == Decimal("0.75")
    assert first["model_name"] == "m"
    assert first["model_version"] == "9.9.9"
    assert first["sequence_number"] == "1000"
    assert first["source_arn"] == STREAM_ARN
    assert "probability" not in stored["rec-007"]
    assert stored["rec-008"]["label"] == Decimal("2.5")
    assert "index" not in first


def test_the_sinks_client_skips_botocore_validation_and_the_service_still_refuses_bad_input(aws):
    create_results_table()
    client = sinks.aws_client("dynamodb")
    bad = [{"PutRequest": {"Item": {"record_id": {"S": 5}}}}]  # a number where a string must be
    # botocore would raise ParamValidationError (not a ClientError) before sending: the service answers instead
    with pytest.raises(ClientError):
        client.batch_write_item(RequestItems={"results": bad})
    assert scan_all("results") == []


def test_dynamodb_retried_batch_overwrites_instead_of_duplicating(aws, text_model):
    create_results_table()
    event = kinesis_event(texts(30))
    for _ in range(2):
        response, report = process_batch(event, text_model, DynamoDBSink("results"), _NoQuarantine())
        assert response == {"batchItemFailures": []}
        assert report.predicted == list(range(30))

    rows = scan_all("results")
    assert len(rows) == 30
    assert {row["record_id"] for row in rows} == {r["eventID"] for r in event["Records"]}
    for row in rows:
        assert row["label"] in text_model.manifest["classes"]
        assert Decimal("0.5") <= row["probability"] <= 1
        assert (row["model_name"], row["model_version"]) == (text_model.name, text_model.version)


def _unprocessing_client(real: Any, keep_back: set[str], once: bool = False) -> Wrapped:
    """batch_write_item that leaves the items whose record_id is in ``keep_back`` unprocessed."""
    wrapped = Wrapped(real)

    def batch_write_item(RequestItems):
        wrapped.calls.append(RequestItems)
        ((table, requests),) = RequestItems.items()
        held = [r for r in requests if r["PutRequest"]["Item"]["record_id"]["S"] in keep_back]
        sent = [r for r in requests if r not in held]
        if sent:
            real.batch_write_item(RequestItems={table: sent})
        if once:
            keep_back.clear()
        return {"UnprocessedItems": {table: held} if held else {}}

    wrapped._overrides["batch_write_item"] = batch_write_item
    return wrapped


def test_dynamodb_unprocessed_items_are_reported_and_cut_the_batch(aws, text_model):
    create_results_table()
    event = kinesis_event(texts(6))
    ids = [r["eventID"] for r in event["Records"]]
    client = _unprocessing_client(boto3.client("dynamodb"), {ids[2], ids[4]})

    response, report = process_batch(event, text_model, DynamoDBSink("results", client=client), _NoQuarantine())

    # Every attempt asked again for exactly the items still unprocessed.
    assert len(client.calls) == BATCH_ATTEMPTS
    for call in client.calls[1:]:
        assert {r["PutRequest"]["Item"]["record_id"]["S"] for r in call["results"]} == {ids[2], ids[4]}
    # Lambda resumes at the first failure: it and everything after it are retried.
    assert response["batchItemFailures"] == [{"itemIdentifier": s} for s in sequences(event)[2:]]
    assert report.predicted == [0, 1]
    assert report.retry == [2, 3, 4, 5]
    assert ids[2] not in {row["record_id"] for row in scan_all("results")}


def test_dynamodb_sink_returns_exactly_the_unprocessed_indices(aws):
    create_results_table()
    items = result_items(40)
    keep_back = {"rec-030", "rec-031"}
    client = _unprocessing_client(boto3.client("dynamodb"), set(keep_back))

    assert DynamoDBSink("results", client=client).write(items) == {30, 31}
    assert {row["record_id"] for row in scan_all("results")} == {i.record_id for i in items} - keep_back


def test_dynamodb_sink_stops_at_the_first_failed_chunk(aws):
    """Chunks after a failure are past the cutoff: Lambda redelivers them, so they are not written."""
    create_results_table()
    items = result_items(40)
    client = _unprocessing_client(boto3.client("dynamodb"), {"rec-003"})

    assert DynamoDBSink("results", client=client).write(items) == {3} | set(range(25, 40))
    assert {row["record_id"] for row in scan_all("results")} == {i.record_id for i in items[:25]} - {"rec-003"}


def test_dynamodb_unprocessed_once_then_written_is_not_a_failure(aws):
    create_results_table()
    client = _unprocessing_client(boto3.client("dynamodb"), {"rec-001"}, once=True)

    assert DynamoDBSink("results", client=client).write(result_items(5)) == set()
    assert len(scan_all("results")) == 5


def test_dynamodb_throttling_error_retries_every_record(aws, text_model):
    def throttled(**kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "BatchWriteItem",
        )

    client = Wrapped(boto3.client("dynamodb"), batch_write_item=throttled)
    event = kinesis_event(texts(5))

    response, report = process_batch(event, text_model, DynamoDBSink("results", client=client), _NoQuarantine())

    assert response["batchItemFailures"] == [{"itemIdentifier": s} for s in sequences(event)]
    assert report.retry == list(range(5))
    assert report.predicted == []


# --------------------------------------------------------------------------- Kinesis


def _create_stream(name: str = "predictions") -> str:
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    return kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"][0]["ShardId"]


def _read_stream(name: str, shard: str) -> list[dict[str, Any]]:
    kinesis = boto3.client("kinesis")
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=10_000)["Records"]


def test_kinesis_sink_puts_one_json_record_per_prediction(aws):
    shard = _create_stream()
    items = result_items(7)

    assert KinesisSink("predictions").write(items) == set()

    records = _read_stream("predictions", shard)
    assert [r["PartitionKey"] for r in records] == [i.record_id for i in items]
    docs = [json.loads(r["Data"]) for r in records]
    assert docs == [i.as_json() for i in items]
    assert docs[0] == {
        "record_id": "rec-000",
        "sequence_number": "1000",
        "source_arn": STREAM_ARN,
        "label": "fresh",
        "probability": 0.75,
        "model_name": "m",
        "model_version": "9.9.9",
    }


def _failing_put_records(real: Any, fail_keys: set[str], once: bool = False) -> Wrapped:
    """put_records that rejects (ErrorCode) the entries whose partition key is in ``fail_keys``."""
    wrapped = Wrapped(real)

    def put_records(StreamName, Records):
        wrapped.calls.append({"StreamName": StreamName, "Records": Records})
        sent = [r for r in Records if r["PartitionKey"] not in fail_keys]
        accepted = iter(real.put_records(StreamName=StreamName, Records=sent)["Records"] if sent else [])
        results = []
        for entry in Records:
            if entry["PartitionKey"] in fail_keys:
                results.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"})
            else:
                results.append(next(accepted))
        if once:
            fail_keys.clear()
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedRecordCount": failed, "Records": results}

    wrapped._overrides["put_records"] = put_records
    return wrapped


def test_kinesis_partial_failure_reports_those_indices(aws):
    shard = _create_stream()
    client = _failing_put_records(boto3.client("kinesis"), {"rec-001", "rec-004"})

    assert KinesisSink("predictions", client=client).write(result_items(6)) == {1, 4}

    assert len(client.calls) == BATCH_ATTEMPTS
    assert [r["PartitionKey"] for r in client.calls[-1]["Records"]] == ["rec-001", "rec-004"]
    # What was accepted was sent once, not again with every retry.
    keys = [r["PartitionKey"] for r in _read_stream("predictions", shard)]
    assert keys == ["rec-000", "rec-002", "rec-003", "rec-005"]


def test_kinesis_transient_failure_is_retried_without_duplicates(aws):
    shard = _create_stream()
    client = _failing_put_records(boto3.client("kinesis"), {"rec-002"}, once=True)

    assert KinesisSink("predictions", client=client).write(result_items(4)) == set()

    keys = sorted(r["PartitionKey"] for r in _read_stream("predictions", shard))
    assert keys == ["rec-000", "rec-001", "rec-002", "rec-003"]


def test_kinesis_partial_failure_through_process_batch(aws, text_model):
    _create_stream()
    event = kinesis_event(texts(5))
    ids = [r["eventID"] for r in event["Records"]]
    client = _failing_put_records(boto3.client("kinesis"), {ids[3]})

    response, report = process_batch(event, text_model, KinesisSink("predictions", client=client), _NoQuarantine())

    assert response["batchItemFailures"] == [{"itemIdentifier": s} for s in sequences(event)[3:]]
    assert report.predicted == [0, 1, 2]


# --------------------------------------------------------------------------- S3


def _stream_event(n: int, first_sequence: int = 1000) -> dict[str, Any]:
    return {
        "Records": [
            kinesis_record(json.dumps({"text": t}), first_sequence + i, source_arn=STREAM_ARN)
            for i, t in enumerate(texts(n))
        ]
    }


def _objects(bucket: str) -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_s3_sink_one_jsonl_object_per_batch_and_redelivery_overwrites(aws, text_model):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="results")
    event = _stream_event(5)
    first_id = event["Records"][0]["eventID"]

    for _ in range(2):
        response, _ = process_batch(event, text_model, S3Sink("results", prefix="out/"), _NoQuarantine())
        assert response == {"batchItemFailures": []}

    assert _objects("results") == [f"out/reviews/{first_id}.jsonl"]
    body = s3.get_object(Bucket="results", Key=f"out/reviews/{first_id}.jsonl")["Body"].read().decode()
    lines = [json.loads(line) for line in body.splitlines()]
    assert [line["record_id"] for line in lines] == [r["eventID"] for r in event["Records"]]
    assert [line["sequence_number"] for line in lines] == sequences(event)
    assert all(line["label"] in text_model.manifest["classes"] for line in lines)
    assert all(line["model_version"] == text_model.version for line in lines)
    assert body.endswith("\n")


def test_s3_sink_write_error_fails_every_item(aws):
    # No bucket: put_object raises NoSuchBucket.
    assert S3Sink("missing-bucket").write(result_items(3)) == {0, 1, 2}


# --------------------------------------------------------------------------- quarantine


class _NoQuarantine:
    def send(self, items):
        assert not items, f"unexpected poison: {[i.reason for i in items]}"
        return set()


def _poison(index: int, record: Any, reason: str = "data is not valid JSON") -> QuarantineItem:
    return QuarantineItem(index, f"shardId-0:{index}", str(index), STREAM_ARN, reason, record)


def _create_queue() -> tuple[Any, str]:
    sqs = boto3.client("sqs")
    return sqs, sqs.create_queue(QueueName="quarantine")["QueueUrl"]


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _recording(real: Any) -> Wrapped:
    wrapped = Wrapped(real)

    def send_message_batch(QueueUrl, Entries):
        wrapped.calls.append({"Entries": Entries})
        return real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)

    wrapped._overrides["send_message_batch"] = send_message_batch
    return wrapped


def test_sqs_quarantine_sends_id_reason_and_raw_record(aws, text_model):
    sqs, url = _create_queue()
    bad = kinesis_record(b"\xff not json", 2000, source_arn=STREAM_ARN)
    wrong = kinesis_record(json.dumps({"review": "no text field"}), 2001, source_arn=STREAM_ARN)
    good = kinesis_record(json.dumps({"text": SAMPLE_TEXTS[0]}), 2002, source_arn=STREAM_ARN)
    event = {"Records": [bad, good, wrong]}

    response, report = process_batch(event, text_model, sinks.ResponseSink(), SQSQuarantine(url))

    assert response["batchItemFailures"] == []
    assert report.quarantined == [0, 2]
    messages = {m["record_id"]: m for m in _drain(sqs, url)}
    assert set(messages) == {bad["eventID"], wrong["eventID"]}
    assert messages[bad["eventID"]]["record"] == bad
    assert "UTF-8" in messages[bad["eventID"]]["reason"]
    assert messages[wrong["eventID"]]["record"] == wrong
    assert "'text'" in messages[wrong["eventID"]]["reason"]
    assert messages[wrong["eventID"]]["sequence_number"] == "2001"
    assert messages[wrong["eventID"]]["source_arn"] == STREAM_ARN


def test_sqs_quarantine_describes_large_records_instead_of_attaching(aws):
    sqs, url = _create_queue()
    big = {"kinesis": {"data": base64.b64encode(b"x" * 300_000).decode()}}
    small = {"kinesis": {"data": "e30="}}

    assert SQSQuarantine(url).send([_poison(0, big), _poison(1, small)]) == set()

    messages = {m["record_id"]: m for m in _drain(sqs, url)}
    large = messages["shardId-0:0"]
    assert "record" not in large
    assert large["record_omitted_bytes"] == len(json.dumps(big))
    assert large["record_omitted_bytes"] > MAX_ATTACHED_RECORD_BYTES
    assert large["reason"] == "data is not valid JSON"
    assert messages["shardId-0:1"]["record"] == small


def test_sqs_quarantine_batches_respect_count_and_size_limits(aws):
    sqs, url = _create_queue()
    client = _recording(boto3.client("sqs"))
    # 23 small records, then 5 of ~150 KB (attached, but only one fits per 256 KiB call).
    items = [_poison(i, {"data": f"small-{i}"}) for i in range(23)]
    items += [_poison(23 + i, {"data": "y" * 150_000}) for i in range(5)]

    assert SQSQuarantine(url, client=client).send(items) == set()

    for call in client.calls:
        assert 1 <= len(call["Entries"]) <= 10
        assert sum(len(e["MessageBody"].encode()) for e in call["Entries"]) <= 256 * 1024
    assert sum(len(call["Entries"]) for call in client.calls) == len(items)
    assert [len(call["Entries"]) for call in client.calls][:2] == [10, 10]
    received = _drain(sqs, url)
    assert sorted(m["record_id"] for m in received) == sorted(i.record_id for i in items)


def test_sqs_failed_entry_reports_that_index(aws, text_model):
    _, url = _create_queue()
    real = boto3.client("sqs")

    def send_message_batch(QueueUrl, Entries):
        # The entry for the second poison record is refused; the rest go through.
        ok = [e for e in Entries if e["Id"] != "1"]
        out = real.send_message_batch(QueueUrl=QueueUrl, Entries=ok)
        out["Failed"] = [{"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "try again"}]
        return out

    client = Wrapped(real, send_message_batch=send_message_batch)
    items = [_poison(i, {"n": i}) for i in (1, 4, 6)]
    assert SQSQuarantine(url, client=client).send(items) == {4}

    # Through the batch: the record whose quarantine failed and everything after are retried.
    records = [kinesis_record(json.dumps({"text": t}), 3000 + i, source_arn=STREAM_ARN) for i, t in enumerate(texts(6))]
    records[1] = kinesis_record("not json", 3001, source_arn=STREAM_ARN)
    records[3] = kinesis_record("[1, 2]", 3003, source_arn=STREAM_ARN)
    response, report = process_batch({"Records": records}, text_model, sinks.ResponseSink(), SQSQuarantine(url, client))
    assert response["batchItemFailures"] == [{"itemIdentifier": str(3000 + i)} for i in range(3, 6)]
    assert report.quarantined == [1]
    assert report.predicted == [0, 2]
    assert set(response["predictions"]) == {records[0]["eventID"], records[2]["eventID"]}


def test_s3_quarantine_one_object_per_record(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="poison")
    big = {"data": "z" * 300_000}  # S3 keeps even records too large for SQS
    items = [_poison(0, {"data": "a"}), _poison(5, big, reason="missing field 'text'")]

    assert S3Quarantine("poison", prefix="q/").send(items) == set()

    assert sorted(_objects("poison")) == ["q/shardId-0:0.json", "q/shardId-0:5.json"]
    doc = json.loads(s3.get_object(Bucket="poison", Key="q/shardId-0:5.json")["Body"].read())
    assert doc["record_id"] == "shardId-0:5"
    assert doc["reason"] == "missing field 'text'"
    assert doc["record"] == big
    # A failing put is reported per record.
    assert S3Quarantine("no-such-bucket").send(items) == {0, 5}


# --------------------------------------------------------------------------- DynamoDB Streams end to end


def test_dynamodb_stream_scored_end_to_end(aws, text_model, text_model_dir, restore_logging):
    ddb = boto3.client("dynamodb")
    source = ddb.create_table(
        TableName="reviews",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    stream_arn = source["TableDescription"]["LatestStreamArn"]
    create_results_table()
    for i, text in enumerate(SAMPLE_TEXTS):
        ddb.put_item(TableName="reviews", Item={"id": {"S": f"r{i}"}, "text": {"S": text}})
    ddb.update_item(
        TableName="reviews",
        Key={"id": {"S": "r0"}},
        UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": "text"},
        ExpressionAttributeValues={":t": {"S": "Dull and lifeless."}},
    )
    ddb.delete_item(TableName="reviews", Key={"id": {"S": "r1"}})

    streams = boto3.client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator)["Records"]
    for record in records:
        # What Lambda adds / how it serialises the stream record.
        record["eventSourceARN"] = stream_arn
        change = record["dynamodb"]
        change["ApproximateCreationDateTime"] = change["ApproximateCreationDateTime"].timestamp()
    event = json.loads(json.dumps({"Records": records}))
    assert [r["eventName"] for r in records] == ["INSERT"] * 4 + ["MODIFY", "REMOVE"]

    app = App.from_env({"MODEL_DIR": str(text_model_dir), "RESULTS_TABLE": "results"})
    response = app.handle(event)

    assert response == {"batchItemFailures": []}
    rows = {row["record_id"]: row for row in scan_all("results")}
    scored = [r for r in records if r["eventName"] in ("INSERT", "MODIFY")]
    assert set(rows) == {r["eventID"] for r in scored}
    for record in scored:
        row = rows[record["eventID"]]
        assert row["sequence_number"] == record["dynamodb"]["SequenceNumber"]
        assert row["source_arn"] == stream_arn
        assert row["label"] in text_model.manifest["classes"]
        assert isinstance(row["probability"], Decimal)


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RESULTS_TABLE": "t", "RESULTS_BUCKET": "b"}, ("RESULTS_TABLE", "RESULTS_BUCKET")),
        ({"RESULTS_STREAM": "s", "RESULTS_TABLE": "t"}, ("RESULTS_TABLE", "RESULTS_STREAM")),
        ({"QUARANTINE_QUEUE_URL": "q", "QUARANTINE_BUCKET": "b"}, ("QUARANTINE_QUEUE_URL", "QUARANTINE_BUCKET")),
    ],
)
def test_conflicting_destinations_are_a_config_error(aws, text_model_dir, restore_logging, env, named):
    with pytest.raises(ConfigError) as excinfo:
        App.from_env({"MODEL_DIR": str(text_model_dir), **env})
    message = str(excinfo.value)
    assert message.startswith("set at most one of")
    found = message.split("found", 1)[1]
    for name in named:
        assert name in found


def test_an_unknown_log_level_is_a_config_error(text_model_dir):
    with pytest.raises(ConfigError, match=r"LOG_LEVEL='VERBOSE' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        App.from_env({"MODEL_DIR": str(text_model_dir), "LOG_LEVEL": "verbose"})
