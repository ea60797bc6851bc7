"""The twin's endpoint: stock moto in a process of its own, and moto sped up
(``localtwin.moto_speedups``, the endpoint's ``fast_moto``) answering exactly as moto does:
the DynamoDB write path, Scan and Kinesis PutRecords.

The same script of calls runs on two endpoints, one started with the replacements in
place and one running stock moto, and every answer (as botocore parses it, without
``ResponseMetadata``) and every error must be the same. The script covers the plain
case the replacements take a shortcut on and the cases they hand back to moto
(binary, sets, maps, lists, a range key, filters), validation errors and the item size
limit at its exact boundary. Kinesis and DynamoDB Streams reads are covered in
``tests/test_esm.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localtwin.embedded_aws import EmbeddedAWS
from localtwin.moto_speedups import MOTO_ORIGINALS, restore_moto, speed_up_moto

pytestmark = pytest.mark.aws


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAWS]:
    with EmbeddedAWS() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def fast_aws() -> Iterator[EmbeddedAWS]:
    with EmbeddedAWS(fast_moto=True) as endpoint:
        yield endpoint


def _key_schema(hash_key: tuple[str, str], range_key: tuple[str, str] | None = None) -> dict[str, Any]:
    keys = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    attributes = [{"AttributeName": hash_key[0], "AttributeType": hash_key[1]}]
    if range_key:
        keys.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
        attributes.append({"AttributeName": range_key[0], "AttributeType": range_key[1]})
    return {"KeySchema": keys, "AttributeDefinitions": attributes, "BillingMode": "PAY_PER_REQUEST"}


def _put(item: dict[str, Any]) -> dict[str, Any]:
    return {"PutRequest": {"Item": item}}


PLAIN = [
    {"pk": {"S": f"plain-{i}"}, "n": {"N": str(i * 7 - 3)}, "ok": {"BOOL": i % 2 == 0}, "nothing": {"NULL": True}}
    for i in range(30)
]
VARIED = [
    {"pk": {"S": "binary"}, "b": {"B": b"\x00\xffbytes"}, "bs": {"BS": [b"a", b"\x01"]}},
    {"pk": {"S": "sets"}, "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2.5"]}},
    {"pk": {"S": "nested"}, "m": {"M": {"a": {"S": "b"}, "l": {"L": [{"N": "1"}, {"M": {}}]}}}, "e": {"L": []}},
    {"pk": {"S": "unicodé ✓"}, "text": {"S": "naïve café — 漢字 " * 20}, "empty": {"M": {}}},
]


def exercise(aws: EmbeddedAWS, tag: str) -> list[Any]:
    """One script of calls on fresh resources named with ``tag``; the answers, normalised."""
    dynamodb, kinesis = aws.client("dynamodb"), aws.client("kinesis")
    answers: list[Any] = []

    def call(fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            answer = fn(**kwargs)
            answer.pop("ResponseMetadata", None)
        except ClientError as exc:
            answer = {"error": exc.response["Error"].get("Code"), "message": exc.response["Error"].get("Message")}
        answers.append(answer)
        return answer

    plain, ranged, numbered = f"plain-{tag}", f"ranged-{tag}", f"numbered-{tag}"
    dynamodb.create_table(
        TableName=plain,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        **_key_schema(("pk", "S")),
    )
    dynamodb.create_table(TableName=ranged, **_key_schema(("pk", "S"), ("rk", "N")))
    dynamodb.create_table(TableName=numbered, **_key_schema(("n", "N")))

    for chunk in (PLAIN[:25], PLAIN[25:] + VARIED):
        call(dynamodb.batch_write_item, RequestItems={plain: [_put(item) for item in chunk]})
    call(dynamodb.batch_write_item, RequestItems={plain: [{"DeleteRequest": {"Key": {"pk": {"S": "plain-3"}}}}]})
    call(dynamodb.put_item, TableName=plain, Item={"pk": {"S": "plain-4"}, "n": {"N": "4.50"}}, ReturnValues="ALL_OLD")
    call(
        dynamodb.batch_write_item,
        RequestItems={
            plain: [_put({"pk": {"S": "both-1"}, "v": {"S": "a"}})],
            numbered: [_put({"n": {"N": str(n)}, "v": {"S": str(n)}}) for n in (10, 9, 100, -1, 2.5, 0)],
            ranged: [_put({"pk": {"S": f"r{i % 3}"}, "rk": {"N": str(-i)}, "v": {"S": "x"}}) for i in range(9)],
        },
        ReturnConsumedCapacity="TOTAL",
    )
    # Validation errors, and moto's item size limit (405,000 bytes) on each side of the boundary.
    for bad in (
        [_put({"pk": {"S": ""}, "v": {"S": "empty key"}})],
        [_put({"pk": {"S": "dup"}}), _put({"pk": {"S": "dup"}})],
        [_put({"pk": {"S": "nan"}, "n": {"N": "abc"}})],
        [_put({"pk": {"S": "spaces"}, "n": {"N": " 1"}})],
        [_put({"pk": {"S": "null"}, "z": {"NULL": False}})],
        [_put({"pk": {"S": "k" * 2049}})],
        [_put({"pk": {"S": "k"}, "blob": {"S": "x" * 404_993}})],
        [_put({"pk": {"S": "l"}, "blob": {"S": "x" * 404_994}})],
        [_put({"nokey": {"S": "x"}})],
    ):
        call(dynamodb.batch_write_item, RequestItems={plain: bad})
    call(dynamodb.batch_write_item, RequestItems={f"missing-{tag}": [_put({"pk": {"S": "x"}})]})
    call(dynamodb.update_item, TableName=plain, Key={"pk": {"S": "plain-5"}}, UpdateExpression="SET v = :v",
         ExpressionAttributeValues={":v": {"S": "updated"}}, ReturnValues="ALL_NEW")  # fmt: skip

    for table in (plain, ranged, numbered):
        for kwargs in ({}, {"Limit": 4}, {"ReturnConsumedCapacity": "INDEXES"}):
            start: dict[str, Any] | None = None
            while True:
                page = call(dynamodb.scan, TableName=table, **kwargs, **({"ExclusiveStartKey": start} if start else {}))
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
    call(
        dynamodb.scan,
        TableName=plain,
        FilterExpression="n > :zero",
        ExpressionAttributeValues={":zero": {"N": "0"}},
        ProjectionExpression="pk, n",
    )
    call(dynamodb.scan, TableName=plain, Segment=1, TotalSegments=3)
    call(dynamodb.scan, TableName=f"missing-{tag}")
    for item in PLAIN[:3] + VARIED:
        call(dynamodb.get_item, TableName=plain, Key={"pk": item["pk"]})

    streams = aws.client("dynamodbstreams")
    stream_arn = dynamodb.describe_table(TableName=plain)["Table"]["LatestStreamArn"]
    [shard] = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )
    changes = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    answers.append(
        [
            (c["eventName"], c["dynamodb"]["Keys"], c["dynamodb"].get("NewImage"), c["dynamodb"].get("OldImage"))
            for c in changes
        ]
    )

    stream = f"stream-{tag}"
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    records = [{"PartitionKey": f"key-{i}", "Data": f'{{"text": "review {i}"}}'.encode()} for i in range(20)]
    call(kinesis.put_records, StreamName=stream, Records=records)
    call(kinesis.put_records, StreamName=stream, Records=[{"PartitionKey": "k", "Data": b"x" * (1024 * 1024 + 1)}])
    call(kinesis.put_records, StreamName=f"missing-{tag}", Records=records[:1])

    return json.loads(
        json.dumps(answers, default=lambda v: repr(v) if isinstance(v, bytes | Decimal) else str(v)).replace(tag, "TAG")
    )


def test_sped_up_moto_writes_and_scans_answer_like_moto(aws: EmbeddedAWS, fast_aws: EmbeddedAWS) -> None:
    tag = uuid.uuid4().hex[:10]
    fast, slow = exercise(fast_aws, tag), exercise(aws, tag)
    assert len(fast) == len(slow)
    for number, (with_patch, without) in enumerate(zip(fast, slow)):
        assert with_patch == without, f"answer #{number} differs"
    errors = [answer["error"] for answer in fast if isinstance(answer, dict) and "error" in answer]
    assert errors.count("ValidationException") >= 7 and "ResourceNotFoundException" in errors
    scanned = [answer for answer in fast if isinstance(answer, dict) and "ScannedCount" in answer]
    assert sum(page["Count"] for page in scanned[:3]) > len(PLAIN)  # the pages of the first table's scans


def test_each_endpoint_is_a_process_of_its_own_with_its_own_state(aws: EmbeddedAWS, fast_aws: EmbeddedAWS) -> None:
    name = f"own-{uuid.uuid4().hex[:8]}"
    aws.create_queue(name)
    assert aws.pid != fast_aws.pid
    assert "QueueUrls" not in fast_aws.client("sqs").list_queues(QueueNamePrefix=name)
    assert len(aws.client("sqs").list_queues(QueueNamePrefix=name)["QueueUrls"]) == 1


def test_the_meter_counts_each_operation(aws: EmbeddedAWS) -> None:
    name = f"metered-{uuid.uuid4().hex[:8]}"
    before = aws.meter()
    aws.create_queue(name)
    aws.client("sqs").list_queues()
    after = aws.meter()
    new = {op: after.operations[op].calls - (before.operations[op].calls if op in before.operations else 0)
           for op in after.operations}  # fmt: skip
    assert new["AmazonSQS.CreateQueue"] == 1 and new["AmazonSQS.ListQueues"] == 1
    assert after.process_cpu_s >= before.process_cpu_s > 0
    assert all(op.wall_s >= 0 and op.cpu_s >= 0 for op in after.operations.values())


def test_cached_lookups_match_moto() -> None:
    """In this process, and moto's own code put back at the end."""
    import moto.backends
    import moto.core.responses
    from moto.dynamodb.responses import DynamoHandler
    from moto.kinesis.responses import KinesisResponse

    assert speed_up_moto()
    try:
        listed = moto.backends.list_of_moto_modules()
        names = [moto.core.responses.method_names_from_class(cls) for cls in (DynamoHandler, KinesisResponse)]
        original_list = MOTO_ORIGINALS[(moto.backends, "list_of_moto_modules")]
        original_names = MOTO_ORIGINALS[(moto.core.responses, "method_names_from_class")]
    finally:
        restore_moto()
    assert not MOTO_ORIGINALS and moto.backends.list_of_moto_modules is original_list
    assert list(listed) == list(original_list())
    assert names == [original_names(cls) for cls in (DynamoHandler, KinesisResponse)]


def test_the_endpoint_keeps_a_clients_connection_open_and_stamps_every_request(aws: EmbeddedAWS) -> None:
    from localtwin.replay.meter import read_timeline

    table = f"keep-{uuid.uuid4().hex[:8]}"
    aws.create_table(table, key="record_id")
    client = aws.client("dynamodb")
    seen = len(read_timeline(aws.endpoint_url))
    for i in range(3):
        client.put_item(TableName=table, Item={"record_id": {"S": f"r{i}"}})
    calls = [t for t in read_timeline(aws.endpoint_url)[seen:] if t.operation == "DynamoDB.PutItem"]
    assert len(calls) == 3
    assert len({t.port for t in calls}) == 1  # one connection for the three calls (werkzeug: three)
    for t in calls:
        assert t.received_at <= t.answered_at <= t.written_at
    assert client.get_item(TableName=table, Key={"record_id": {"S": "r2"}})["Item"]["record_id"] == {"S": "r2"}
