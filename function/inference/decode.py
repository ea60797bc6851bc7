"""Turning each stream record into a model input, a skip, or a poison verdict.

Decoding never raises for a bad record: every record comes back as exactly one
:class:`DecodedRecord` whose ``status`` says what it is. Reasons name what is wrong
(a field, a type, a byte offset), never the record's values: they are logged.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from .events import DYNAMODB_SOURCE, KINESIS_SOURCE, DynamoDBChange, EventKind, KinesisData, describe_source
from .manifest import TabularInput, TextInput

Status = Literal["input", "skip", "poison"]


@dataclass(slots=True)
class DecodedRecord:
    """One record of the batch after decoding."""

    index: int
    #: Stable identifier of the record (``eventID``); results are keyed by it.
    record_id: str
    #: What Lambda accepts as ``itemIdentifier``; ``None`` when the record has none.
    sequence_number: str | None
    source_arn: str
    status: Status
    #: The model input (a text, or a row of floats) when ``status == "input"``.
    value: Any = None
    #: Why the record is skipped or poison; logged, so it never quotes the record.
    reason: str = ""
    #: More about a poison verdict that may quote the record (the model's error message):
    #: for the quarantine destination only, never logged.
    detail: str = ""


_deserializer = None


def _deserialize_image(image: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The attributes ``names`` of a DynamoDB image, typed -> Python values (boto3's
    TypeDeserializer); absent ones are left out.

    Only the attributes the model reads: the others can't make a record unscorable, and
    some can't be read by TypeDeserializer at all (a Lambda event carries ``B`` and ``BS``
    values as base64 text, where TypeDeserializer wants bytes). Imported on first use so
    that Kinesis-only functions never pay for boto3.
    """
    global _deserializer
    if _deserializer is None:
        from boto3.dynamodb.types import TypeDeserializer

        _deserializer = TypeDeserializer()
    return {name: _deserializer.deserialize(image[name]) for name in names if name in image}


def extract_input(doc: Any, contract: TextInput | TabularInput, subject: str = "payload") -> tuple[Any, str]:
    """Pull the model input out of a decoded document.

    ``subject`` names ``doc`` in the reason when it is not an object (a stream record's
    ``payload``, an HTTP ``instance``).

    Returns
    -------
    (value, reason)
        ``value`` is the input, or ``None`` with ``reason`` saying what is wrong.
    """
    if not isinstance(doc, dict):
        return None, f"{subject} is a JSON {type(doc).__name__}, expected an object"
    if contract["kind"] == "text":
        field = contract["field"]
        if field not in doc:
            return None, f"missing field {field!r}"
        text = doc[field]
        if not isinstance(text, str):
            return None, f"field {field!r} is {type(text).__name__}, expected a string"
        return text, ""
    row = []
    for name in contract["features"]:
        if name not in doc:
            return None, f"missing feature {name!r}"
        raw = doc[name]
        if isinstance(raw, bool) or not isinstance(raw, (int, float, Decimal)):
            return None, f"feature {name!r} is {type(raw).__name__}, expected a number"
        try:
            number = float(raw)
        except (OverflowError, ValueError):  # an int beyond float range, a signaling NaN Decimal
            number = math.nan
        if not math.isfinite(number):
            return None, f"feature {name!r} is {str(raw)[:40]}, expected a finite number"
        row.append(number)
    return row, ""


def _from_change(
    change: DynamoDBChange, event_name: object, contract: TextInput | TabularInput
) -> tuple[Status, Any, str]:
    """A DynamoDB change (stream record's ``dynamodb`` or the Kinesis-routed document's).

    Every value is tested before use: the routed document is any JSON a producer wrote.
    """
    if event_name == "REMOVE":
        return "skip", None, "REMOVE event"
    if not isinstance(change, dict):  # the routed document's "dynamodb" can be any JSON value
        return "poison", None, "'dynamodb' is not an object"
    image = change.get("NewImage")
    if image is None:
        view = change.get("StreamViewType")
        view = view if isinstance(view, str) and len(view) <= 40 else "unknown view type"
        return "skip", None, f"no NewImage ({view}; KEYS_ONLY or OLD_IMAGE stream)"
    if not isinstance(image, dict):
        return "poison", None, "NewImage is not an object"
    try:
        names = [contract["field"]] if contract["kind"] == "text" else contract["features"]
        doc = _deserialize_image(image, names)
    except RecursionError:  # M / L nested hundreds deep (DynamoDB itself allows 32 levels)
        return "poison", None, "NewImage is nested too deeply"
    except Exception as exc:  # TypeError/ValueError/KeyError/AttributeError from bad descriptors
        return "poison", None, f"malformed DynamoDB attribute in NewImage ({type(exc).__name__})"
    value, reason = extract_input(doc, contract)
    return ("poison", None, f"NewImage: {reason}") if reason else ("input", value, "")


def _decode_kinesis(body: KinesisData, contract: TextInput | TabularInput) -> tuple[Status, Any, str]:
    """A Kinesis record's payload, from its ``kinesis`` object (a dict: it has a sequence number)."""
    try:
        # base64.b64decode(data, validate=True) is exactly this call, behind two Python frames.
        raw = binascii.a2b_base64(body["data"], strict_mode=True)
    except (binascii.Error, ValueError, TypeError):
        return "poison", None, "data is not valid base64"
    except KeyError:
        return "poison", None, "record has no kinesis.data"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "poison", None, f"data is not valid UTF-8 (byte {exc.start})"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:  # its msg is one of the decoder's fixed phrases
        return "poison", None, f"data is not valid JSON ({exc.msg} at character {exc.pos})"
    except RecursionError:
        return "poison", None, "data is not valid JSON (nested too deeply to read)"
    except ValueError as exc:  # an integer of more than 4300 digits
        return "poison", None, f"data is not valid JSON ({type(exc).__name__})"
    if isinstance(doc, dict) and doc.get("eventSource") == DYNAMODB_SOURCE and "dynamodb" in doc:
        # A DynamoDB change delivered through Kinesis Data Streams for DynamoDB.
        return _from_change(doc["dynamodb"], doc.get("eventName"), contract)
    value, reason = extract_input(doc, contract)
    return ("poison", None, reason) if reason else ("input", value, "")


def _content_id(record: Any, index: int) -> str:
    """An id for a record with neither eventID nor sequence number (never sent by Lambda):
    derived from its content, so two such records don't share a quarantine key. A record
    too deeply nested to serialise (only an in-process caller can build one) is named by
    its type and position instead."""
    try:
        content = json.dumps(record, sort_keys=True, default=str)
    except (RecursionError, ValueError, TypeError):  # too deep, circular, unsortable keys
        content = f"{type(record).__name__}@{index}"
    digest = hashlib.sha256(content.encode()).hexdigest()
    return f"unidentified-{digest[:16]}"


def decode_records(records: list[Any], kind: EventKind, contract: TextInput | TabularInput) -> list[DecodedRecord]:
    """Decode a whole batch; one :class:`DecodedRecord` per record, in order.

    ``records`` are whatever the caller sent. Lambda sends
    :class:`~inference.events.KinesisStreamRecord` or
    :class:`~inference.events.DynamoDBStreamRecord` objects, but every field is tested
    before it is used: a record that breaks the shape is poison.
    """
    expected_source = KINESIS_SOURCE if kind == "kinesis" else DYNAMODB_SOURCE
    out = []
    status: Status
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            out.append(
                DecodedRecord(index, _content_id(record, index), None, "", "poison", reason="record is not an object")
            )
            continue
        # Any JSON value; read as KinesisData or DynamoDBChange only once it has a sequence number.
        body: Any = record.get("kinesis" if kind == "kinesis" else "dynamodb")
        seq = body.get("sequenceNumber" if kind == "kinesis" else "SequenceNumber") if isinstance(body, dict) else None
        seq = seq if isinstance(seq, str) and seq else None
        record_id = record.get("eventID")
        if not isinstance(record_id, str) or not record_id:
            record_id = seq or _content_id(record, index)
        arn = record.get("eventSourceARN")
        arn = arn if isinstance(arn, str) else ""
        try:
            source = record.get("eventSource")
            if source != expected_source:
                status, value, reason = "poison", None, f"eventSource {describe_source(source)} in a {kind} batch"
            elif seq is None:
                status, value, reason = "poison", None, "record has no sequence number"
            elif kind == "kinesis":
                status, value, reason = _decode_kinesis(body, contract)
            else:
                status, value, reason = _from_change(body, record.get("eventName"), contract)
        except Exception as exc:  # a shape nobody foresaw must still not sink the batch
            status, value, reason = "poison", None, f"undecodable record ({type(exc).__name__})"
        out.append(DecodedRecord(index, record_id, seq, arn, status, value, reason))
    return out
