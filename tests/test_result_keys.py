"""Results that join back: ``RESULT_KEYS`` puts the source record's own key on each result.

DynamoDB items carry their ``Keys`` (deserialized), Kinesis records their partition key and
named payload fields; every sink writes ``key`` beside the outputs, and the results table stays
keyed by ``record_id``, so a redelivered batch overwrites, never adds.
"""

from __future__ import annotations

import base64
import gzip
import json
from decimal import Decimal
from typing import Any

import boto3
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from inference.app import App, ConfigError
from inference.batch import process_batch
from inference.model import LoadedModel
from inference.result_keys import parse_result_keys, plain_attribute
from inference.sinks import DynamoDBSink, KinesisSink, S3Sink

from testing.doubles import FakeQuarantine
from testing.events import dynamodb_record, kinesis_ddb_document, kinesis_record
from training.tabular_model import TABULAR_FEATURES

ROW = dict(zip(TABULAR_FEATURES, [0.5, -1.0, 2.0]))


def ddb_record(customer: str, order: int, sequence: int) -> dict[str, Any]:
    image = {name: {"N": str(value)} for name, value in ROW.items()} | {"region": {"S": "eu"}}
    record = dynamodb_record(image, str(sequence))
    record["dynamodb"]["Keys"] = {"customer": {"S": customer}, "order": {"N": str(order)}}
    return record


def kinesis_batch() -> dict[str, Any]:
    docs = [{**ROW, "customer_id": 7, "note": "x"}, {**ROW, "customer_id": "c-8"}, ROW]
    records = [kinesis_record(json.dumps(doc), 500 + i, partition_key=f"pk-{i}") for i, doc in enumerate(docs)]
    records[1]["kinesis"]["data"] = base64.b64encode(gzip.compress(json.dumps(docs[1]).encode())).decode()
    return {"Records": records}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "keys", "partition_key", "fields"),
    [
        ("", False, False, ()),
        ("keys", True, False, ()),
        ("partition_key, field:customer_id,field:region", False, True, ("customer_id", "region")),
    ],
)
def test_the_setting_names_what_to_carry(text: str, keys: bool, partition_key: bool, fields: tuple) -> None:
    wanted = parse_result_keys(text)
    assert (wanted.keys, wanted.partition_key, wanted.fields) == (keys, partition_key, fields)


@pytest.mark.unit
def test_a_setting_that_names_nothing_known_is_refused_at_init(tabular_model_dir: Any) -> None:
    with pytest.raises(ConfigError, match=r"RESULT_KEYS item 'customer_id' is none of keys .*field:NAME"):
        App.from_env({"MODEL_DIR": str(tabular_model_dir), "RESULT_KEYS": "customer_id"})


@pytest.mark.unit
def test_kinesis_results_carry_the_partition_key_and_the_named_fields(tabular_model_dir: Any) -> None:
    app = App.from_env({"MODEL_DIR": str(tabular_model_dir), "RESULT_KEYS": "partition_key,field:customer_id"})
    event = kinesis_batch()

    predictions = app.handle(event)["predictions"]

    keys = [predictions[record["eventID"]]["key"] for record in event["Records"]]
    assert keys == [
        {"partition_key": "pk-0", "fields": {"customer_id": 7}},
        {"partition_key": "pk-1", "fields": {"customer_id": "c-8"}},  # read through gzip
        {"partition_key": "pk-2"},  # a record without the field has none
    ]


@pytest.mark.unit
def test_without_the_setting_results_keep_their_shape(tabular_model_dir: Any) -> None:
    predictions = App.from_env({"MODEL_DIR": str(tabular_model_dir)}).handle(kinesis_batch())["predictions"]
    assert all("key" not in result for result in predictions.values())


@pytest.mark.unit
def test_a_kpl_user_record_carries_its_own_partition_key(tabular_model_dir: Any) -> None:
    aggregator = RecordAggregator()
    for i in range(3):
        aggregator.add_user_record(f"user-{i}", json.dumps(ROW).encode())
    _, _, data = aggregator.clear_and_get().get_contents()
    app = App.from_env({"MODEL_DIR": str(tabular_model_dir), "RESULT_KEYS": "partition_key"})

    predictions = app.handle({"Records": [kinesis_record(data, 900, partition_key="aggregate-key")]})["predictions"]

    assert sorted(result["key"]["partition_key"] for result in predictions.values()) == ["user-0", "user-1", "user-2"]


@pytest.mark.unit
def test_a_dynamodb_change_through_kinesis_carries_the_items_keys(tabular_model_dir: Any) -> None:
    document = kinesis_ddb_document({name: {"N": str(value)} for name, value in ROW.items()})
    app = App.from_env({"MODEL_DIR": str(tabular_model_dir), "RESULT_KEYS": "keys"})

    predictions = app.handle({"Records": [kinesis_record(json.dumps(document), 77)]})["predictions"]

    assert [result["key"] for result in predictions.values()] == [{"keys": {"Id": 101}}]


@pytest.mark.unit
def test_dynamodb_attribute_values_become_plain_json() -> None:
    value = {
        "M": {
            "n": {"N": "3"},
            "f": {"N": "2.5"},
            "b": {"B": "AAE="},
            "s": {"SS": ["a", "b"]},
            "l": {"L": [{"NULL": True}, {"BOOL": False}, {"NS": ["1", "1.5"]}]},
        }
    }
    assert plain_attribute(value) == {"n": 3, "f": 2.5, "b": "AAE=", "s": ["a", "b"], "l": [None, False, [1, 1.5]]}


@pytest.mark.aws
def test_every_sink_writes_the_items_keys_and_a_redelivery_overwrites(
    mocked_aws: None, tabular_model: LoadedModel
) -> None:
    """The results table is keyed by record_id: the same batch twice leaves one item per record."""
    boto3.client("dynamodb").create_table(
        TableName="results",
        KeySchema=[{"AttributeName": "record_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "record_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    boto3.client("kinesis").create_stream(StreamName="results", ShardCount=1)
    boto3.client("s3").create_bucket(Bucket="results")
    event = {"Records": [ddb_record("c#1", 3, 10), ddb_record("c#2", 4, 11)]}
    wanted = parse_result_keys("keys,field:region")
    expected = [
        {"keys": {"customer": "c#1", "order": 3}, "fields": {"region": "eu"}},
        {"keys": {"customer": "c#2", "order": 4}, "fields": {"region": "eu"}},
    ]

    for sink in (DynamoDBSink("results"), DynamoDBSink("results"), KinesisSink("results"), S3Sink("results")):
        response, _ = process_batch(event, tabular_model, sink, FakeQuarantine(), result_keys=wanted)
        assert response == {"batchItemFailures": []}

    items = boto3.resource("dynamodb").Table("results").scan()["Items"]
    assert len(items) == 2  # written twice, still one item per record_id
    by_id = {item["record_id"]: item["key"] for item in items}
    assert [by_id[r["eventID"]] for r in event["Records"]] == [
        {"keys": {"customer": "c#1", "order": Decimal(3)}, "fields": {"region": "eu"}},
        {"keys": {"customer": "c#2", "order": Decimal(4)}, "fields": {"region": "eu"}},
    ]
    kinesis = boto3.client("kinesis")
    shard = kinesis.list_shards(StreamName="results")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="results", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    docs = [json.loads(r["Data"]) for r in kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]]
    (key,) = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="results")["Contents"]]
    lines = [json.loads(line) for line in boto3.client("s3").get_object(Bucket="results", Key=key)["Body"].iter_lines()]
    assert [d["key"] for d in docs] == [d["key"] for d in lines] == expected
