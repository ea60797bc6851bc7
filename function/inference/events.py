"""Wire shapes of the stream events Lambda delivers, and recognising them.

See REFERENCE.md §1. Kinesis and DynamoDB Streams deliver ``{"Records": [...]}``; a
DynamoDB change routed through Kinesis arrives as a Kinesis record whose ``data`` is a
JSON change document (recognised per record, in :mod:`inference.decode`).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

KINESIS_SOURCE = "aws:kinesis"
DYNAMODB_SOURCE = "aws:dynamodb"
EventKind = Literal["kinesis", "dynamodb"]


class UnsupportedEventError(ValueError):
    """The event is not a Kinesis or DynamoDB Streams batch (nor, see :mod:`inference.http`,
    an HTTP request)."""


class KinesisData(TypedDict):
    kinesisSchemaVersion: str
    partitionKey: str
    sequenceNumber: str
    data: str  # base64
    approximateArrivalTimestamp: float


class KinesisStreamRecord(TypedDict):
    eventSource: Literal["aws:kinesis"]
    eventID: str  # "shardId-…:<sequenceNumber>"
    eventName: str
    eventSourceARN: str
    awsRegion: str
    kinesis: KinesisData


class DynamoDBChange(TypedDict, total=False):
    ApproximateCreationDateTime: float
    Keys: dict[str, Any]
    NewImage: dict[str, Any]
    OldImage: dict[str, Any]
    SequenceNumber: str
    SizeBytes: int
    StreamViewType: str


class DynamoDBStreamRecord(TypedDict):
    eventSource: Literal["aws:dynamodb"]
    eventID: str
    eventName: Literal["INSERT", "MODIFY", "REMOVE"]
    eventSourceARN: str  # "…:table/T/stream/TS"
    awsRegion: str
    dynamodb: DynamoDBChange


class BatchItemFailure(TypedDict):
    itemIdentifier: str


class StreamResponse(TypedDict, total=False):
    """What the handler returns. Lambda reads only ``batchItemFailures``."""

    batchItemFailures: list[BatchItemFailure]
    #: Present only when no results sink is configured: record id -> prediction.
    predictions: dict[str, dict[str, Any]]


def _describe(event: Any) -> str:
    if isinstance(event, dict):
        keys = ", ".join(sorted(map(str, event))[:8]) or "no keys"
        return f"an object with {keys}"
    return f"a {type(event).__name__}"


def classify_event(event: Any) -> tuple[EventKind, list[Any]]:
    """Tell which stream delivered ``event`` and return its records.

    The batch's kind is that of its first record (Lambda never mixes sources in one
    invocation); a later record of another kind is treated as poison by the decoder.

    Raises
    ------
    UnsupportedEventError
        Naming what was seen instead of ``Records[].eventSource`` = ``aws:kinesis`` or
        ``aws:dynamodb``.
    """
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise UnsupportedEventError(
            "expected a Kinesis or DynamoDB Streams event ({'Records': [...]}) or an HTTP request "
            f"(API Gateway REST or HTTP API proxy, or a function URL), got {_describe(event)}"
        )
    if not records:
        return "kinesis", records
    first = records[0]
    source = first.get("eventSource") if isinstance(first, dict) else None
    if source == KINESIS_SOURCE:
        return "kinesis", records
    if source == DYNAMODB_SOURCE:
        return "dynamodb", records
    raise UnsupportedEventError(
        f"unsupported event source {source!r} in Records[0] (expected 'aws:kinesis' or "
        f"'aws:dynamodb'); Records[0] is {_describe(first)}"
    )
