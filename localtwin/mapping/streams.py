"""The stream adapters: a Kinesis stream or a DynamoDB stream, read with the real boto3 API.

Kinesis is read with ``ListShards`` / ``GetShardIterator`` / ``GetRecords``, DynamoDB
Streams with ``DescribeStream`` / ``GetShardIterator`` / ``GetRecords``. Every record read
becomes a :class:`Record`: its sequence number, the key ``ParallelizationFactor`` routes
on (the Kinesis partition key; the DynamoDB ``Keys``), its arrival time, and the record
shaped as Lambda delivers it (DynamoDB binary values as base64,
``ApproximateCreationDateTime`` in whole epoch seconds), with its JSON size.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from inference.events import KinesisStreamRecord

from testing.events import kinesis_record

#: GetRecords ``Limit`` maxima.
GET_RECORDS_LIMIT = {"kinesis": 10_000, "dynamodb": 1_000}


@dataclass(slots=True)
class Record:
    """One stream record as the mapping holds it."""

    sequence: str
    order: int  # the sequence number as an int (they compare numerically)
    key: str  # what ParallelizationFactor routes on
    arrival: float  # epoch seconds
    event: KinesisStreamRecord | dict[str, Any]  # the Lambda-shaped record (DynamoDB's as boto3 returns it)
    size: int  # bytes of ``json.dumps(event)``


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _jsonable(value: Any) -> Any:
    """boto3's parsed DynamoDB Streams record -> the JSON Lambda delivers (B/BS as base64)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    return value


@dataclass(frozen=True)
class ShardInfo:
    """A shard as the stream lists it."""

    shard_id: str
    parent_id: str | None
    closed: bool


class Stream:
    """What the mapping needs from a stream; one subclass per source type."""

    kind: Literal["kinesis", "dynamodb"]

    def __init__(self, arn: str, client: Any, region: str, invoke_identity_arn: str) -> None:
        self.arn, self.client, self.region, self.invoke_identity_arn = arn, client, region, invoke_identity_arn

    def list_shards(self) -> list[ShardInfo]:
        raise NotImplementedError

    def iterator(self, shard_id: str, position: str, sequence: str | None = None, at: datetime | None = None) -> str:
        raise NotImplementedError

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """``(records, next_iterator, millis_behind_latest)``; ``next_iterator`` None: shard closed."""
        raise NotImplementedError

    def to_record(self, shard_id: str, raw: dict[str, Any]) -> Record:
        raise NotImplementedError

    def last_sequence(self, shard_id: str) -> str | None:
        """The sequence number of the shard's last record (``None``: empty), read from TRIM_HORIZON."""
        iterator: str | None = self.iterator(shard_id, "TRIM_HORIZON")
        last = None
        while iterator:
            raw, iterator, _ = self.get_records(iterator, GET_RECORDS_LIMIT[self.kind])
            if not raw:
                break
            last = self.to_record(shard_id, raw[-1]).sequence
        return last


def open_stream(
    source_type: str, arn: str, client_factory: Callable[[str], Any], invoke_identity_arn: str = ""
) -> Stream:
    """The mapping's reader of a Kinesis stream or DynamoDB stream (also for checks after a run)."""
    if source_type == "kinesis":
        return _KinesisStream(arn, client_factory("kinesis"), arn.split(":")[3], invoke_identity_arn)
    return _DynamoDBStream(arn, client_factory("dynamodbstreams"), arn.split(":")[3], invoke_identity_arn)


class _KinesisStream(Stream):
    kind = "kinesis"

    def list_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        response = self.client.list_shards(StreamARN=self.arn)
        while True:
            for shard in response["Shards"]:
                closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
                shards.append(ShardInfo(shard["ShardId"], shard.get("ParentShardId"), closed))
            token = response.get("NextToken")
            if not token:
                return shards
            response = self.client.list_shards(NextToken=token)  # the stream must not be named with a token

    def iterator(self, shard_id: str, position: str, sequence: str | None = None, at: datetime | None = None) -> str:
        args: dict[str, Any] = {"StreamARN": self.arn, "ShardId": shard_id, "ShardIteratorType": position}
        if sequence is not None:
            args["StartingSequenceNumber"] = sequence
        if at is not None:
            args["Timestamp"] = at
        iterator: str = self.client.get_shard_iterator(**args)["ShardIterator"]
        return iterator

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None, int | None]:
        response = self.client.get_records(ShardIterator=iterator, Limit=limit, StreamARN=self.arn)
        return response["Records"], response.get("NextShardIterator"), response.get("MillisBehindLatest")

    def to_record(self, shard_id: str, raw: dict[str, Any]) -> Record:
        sequence, key = raw["SequenceNumber"], raw["PartitionKey"]
        arrival = _epoch(raw["ApproximateArrivalTimestamp"])
        # The wire TypedDict, held as the plain dict every Record's event is.
        event = cast(
            dict[str, Any],
            kinesis_record(
                raw["Data"], sequence, shard_id, key, self.arn, round(arrival, 3), self.invoke_identity_arn, self.region
            ),
        )
        return Record(sequence, int(sequence), key, arrival, event, len(json.dumps(event)))


class _DynamoDBStream(Stream):
    kind = "dynamodb"

    def list_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        args: dict[str, Any] = {"StreamArn": self.arn}
        while True:
            description = self.client.describe_stream(**args)["StreamDescription"]
            for shard in description.get("Shards", []):
                closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
                shards.append(ShardInfo(shard["ShardId"], shard.get("ParentShardId"), closed))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            args["ExclusiveStartShardId"] = last

    def iterator(self, shard_id: str, position: str, sequence: str | None = None, at: datetime | None = None) -> str:
        args: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard_id, "ShardIteratorType": position}
        if sequence is not None:
            args["SequenceNumber"] = sequence
        iterator: str = self.client.get_shard_iterator(**args)["ShardIterator"]
        return iterator

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None, int | None]:
        response = self.client.get_records(ShardIterator=iterator, Limit=limit)
        return response["Records"], response.get("NextShardIterator"), None

    def to_record(self, shard_id: str, raw: dict[str, Any]) -> Record:
        change = _jsonable(raw["dynamodb"])
        arrival = _epoch(raw["dynamodb"]["ApproximateCreationDateTime"])
        # Lambda delivers whole epoch seconds (the Streams API's precision).
        change["ApproximateCreationDateTime"] = int(arrival)
        event: dict[str, Any] = {
            "eventID": raw["eventID"],
            "eventName": raw["eventName"],
            "eventVersion": raw.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": raw.get("awsRegion", self.region),
            "dynamodb": change,
            "eventSourceARN": self.arn,
        }
        if "userIdentity" in raw:
            event["userIdentity"] = _jsonable(raw["userIdentity"])
        sequence = change["SequenceNumber"]
        key = json.dumps(change.get("Keys", {}), sort_keys=True)
        return Record(sequence, int(sequence), key, arrival, event, len(json.dumps(event)))
