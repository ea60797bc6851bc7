"""Wire shapes of the stream events Lambda delivers, and recognising them.

See docs/aws-notes.md §1. Kinesis and DynamoDB Streams deliver ``{"Records": [...]}``; a
DynamoDB change routed through Kinesis arrives as a Kinesis record whose ``data`` is a
JSON change document (recognised per record, in :mod:`inference.decode`).

The ``TypedDict`` classes state those shapes for the type checker: the decoder reads the
records' bodies as :class:`KinesisData` and :class:`DynamoDBChange`, and the event builders
(:mod:`testing.events`) return :class:`KinesisStreamRecord` and the rest, so mypy checks
both sides against one description. Nothing checks them at run time: an event is whatever
the caller sent, and the decoder still tests every field it reads (a hostile record is
poison, never an exception).
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
    """A Kinesis record's ``kinesis`` object."""

    kinesisSchemaVersion: str
    partitionKey: str
    sequenceNumber: str
    data: str  # base64
    approximateArrivalTimestamp: float  # epoch seconds


class KinesisStreamRecord(TypedDict):
    """One of ``Records`` in a Kinesis event."""

    eventSource: Literal["aws:kinesis"]
    eventVersion: str
    eventID: str  # "shardId-…:<sequenceNumber>"
    eventName: str  # "aws:kinesis:record"
    invokeIdentityArn: str
    eventSourceARN: str
    awsRegion: str
    kinesis: KinesisData


class KinesisStreamEvent(TypedDict):
    Records: list[KinesisStreamRecord]


#: A DynamoDB attribute value in its typed form: ``{"S": "text"}``, ``{"N": "1.5"}``, ``{"M": {...}}``, ...
AttributeValue = dict[str, Any]


class DynamoDBChange(TypedDict, total=False):
    """A DynamoDB Streams record's ``dynamodb`` object, or the ``dynamodb`` object of a
    :class:`DynamoDBChangeDocument`. Which keys are present depends on the stream's view
    type and the event (no ``NewImage`` on a REMOVE, nor on a KEYS_ONLY or OLD_IMAGE stream)."""

    ApproximateCreationDateTime: float  # epoch seconds; microseconds in a change document
    Keys: dict[str, AttributeValue]
    NewImage: dict[str, AttributeValue]
    OldImage: dict[str, AttributeValue]
    SequenceNumber: str  # absent from a change document
    SizeBytes: int
    StreamViewType: str  # absent from a change document


DynamoDBEventName = Literal["INSERT", "MODIFY", "REMOVE"]


class DynamoDBStreamRecord(TypedDict):
    """One of ``Records`` in a DynamoDB Streams event."""

    eventSource: Literal["aws:dynamodb"]
    eventVersion: str
    eventID: str
    eventName: DynamoDBEventName
    eventSourceARN: str  # "…:table/T/stream/TS"
    awsRegion: str
    dynamodb: DynamoDBChange


class DynamoDBStreamEvent(TypedDict):
    Records: list[DynamoDBStreamRecord]


class DynamoDBChangeDocument(TypedDict):
    """The JSON document a Kinesis Data Streams for DynamoDB record carries in its ``data``."""

    awsRegion: str
    eventID: str
    eventName: DynamoDBEventName
    userIdentity: dict[str, str] | None  # the TTL service for a TTL deletion, else null
    recordFormat: Literal["application/json"]
    tableName: str
    eventSource: Literal["aws:dynamodb"]
    dynamodb: DynamoDBChange


class BatchItemFailure(TypedDict):
    itemIdentifier: str


class StreamResponse(TypedDict, total=False):
    """What the handler returns. Lambda reads only ``batchItemFailures``."""

    batchItemFailures: list[BatchItemFailure]
    #: Present only when no results sink is configured: record id -> prediction.
    predictions: dict[str, dict[str, Any]]


def _describe(event: Any) -> str:
    """What ``event`` is, without its values (key names only, each cut to 40 characters)."""
    if isinstance(event, dict):
        keys = ", ".join(sorted(str(key)[:40] for key in event)[:8]) or "no keys"
        return f"an object with {keys}"
    return f"a {type(event).__name__}"


#: Event sources Lambda names in ``Records[].eventSource`` (or ``EventSource``): an error
#: or log line may echo these; any other value could be anything, so only its type is named.
KNOWN_SOURCES = frozenset(
    {
        "aws:kinesis",
        "aws:dynamodb",
        "aws:sqs",
        "aws:sns",
        "aws:s3",
        "aws:ses",
        "aws:kafka",
        "aws:mq",
        "aws:rmq",
        "aws:docdb",
        "aws:codecommit",
        "aws:SelfManagedKafka",
    }
)


def describe_source(source: Any) -> str:
    """``eventSource`` for a log line or an error: a known source's name (``'aws:sqs'``),
    else only what kind of value it is, so a hostile value is never repeated."""
    if isinstance(source, str) and source in KNOWN_SOURCES:
        return repr(source)
    if isinstance(source, str):
        return f"an unknown str of {len(source)} characters"
    return "None" if source is None else f"a {type(source).__name__}"


def classify_event(event: Any) -> tuple[EventKind, list[Any]]:
    """Tell which stream delivered ``event`` and return its records.

    The batch's kind is that of its first record whose ``eventSource`` is
    ``aws:kinesis`` or ``aws:dynamodb`` (Lambda never mixes sources in one invocation);
    any other record, a garbage one before it included, is poison for the decoder. An
    empty ``Records`` list is an empty Kinesis batch.

    Raises
    ------
    UnsupportedEventError
        When ``event`` is no stream batch: not an object, no ``Records`` list, or a
        non-empty one in which no record has a Kinesis or DynamoDB ``eventSource``. The
        message names what was seen (types and key names, never values).
    """
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise UnsupportedEventError(
            "expected a Kinesis or DynamoDB Streams event ({'Records': [...]}) or an HTTP request "
            f"(API Gateway REST or HTTP API proxy, or a function URL), got {_describe(event)}"
        )
    for record in records:
        source = record.get("eventSource") if isinstance(record, dict) else None
        if source == KINESIS_SOURCE:
            return "kinesis", records
        if source == DYNAMODB_SOURCE:
            return "dynamodb", records
    if not records:
        return "kinesis", records
    first = records[0]
    source = first.get("eventSource") if isinstance(first, dict) else None
    raise UnsupportedEventError(
        f"no record of {len(records)} has eventSource 'aws:kinesis' or 'aws:dynamodb': "
        f"Records[0] is {_describe(first)} (eventSource {describe_source(source)})"
    )
