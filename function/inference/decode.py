"""Turning each stream record into a model input, a skip, or a poison verdict.

Decoding never raises for a bad record: every record comes back as exactly one
:class:`DecodedRecord` whose ``status`` says what it is.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from .events import DYNAMODB_SOURCE, KINESIS_SOURCE, EventKind
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
    reason: str = ""


_deserializer = None


def _deserialize_image(image: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB typed attributes -> Python values (boto3's TypeDeserializer).

    Imported on first use so that Kinesis-only functions never pay for boto3.
    """
    global _deserializer
    if _deserializer is None:
        from boto3.dynamodb.types import TypeDeserializer

        _deserializer = TypeDeserializer()
    return {key: _deserializer.deserialize(value) for key, value in image.items()}


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


def _from_change(change: Any, event_name: Any, contract: TextInput | TabularInput) -> tuple[Status, Any, str]:
    """A DynamoDB change (stream record's ``dynamodb`` or the Kinesis-routed document)."""
    if event_name == "REMOVE":
        return "skip", None, "REMOVE event"
    if not isinstance(change, dict):
        return "poison", None, "'dynamodb' is not an object"
    image = change.get("NewImage")
    if image is None:
        view = change.get("StreamViewType", "unknown view type")
        return "skip", None, f"no NewImage ({view}; KEYS_ONLY or OLD_IMAGE stream)"
    if not isinstance(image, dict):
        return "poison", None, "NewImage is not an object"
    try:
        doc = _deserialize_image(image)
    except Exception as exc:  # TypeError/ValueError/KeyError/AttributeError from bad descriptors
        return "poison", None, f"malformed DynamoDB attribute in NewImage ({type(exc).__name__})"
    value, reason = extract_input(doc, contract)
    return ("poison", None, f"NewImage: {reason}") if reason else ("input", value, "")


def _decode_kinesis(record: dict, contract: TextInput | TabularInput) -> tuple[Status, Any, str]:
    try:
        # base64.b64decode(data, validate=True) is exactly this call, behind two Python frames.
        raw = binascii.a2b_base64(record["kinesis"]["data"], strict_mode=True)
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
    except (ValueError, RecursionError) as exc:
        return "poison", None, f"data is not valid JSON ({str(exc)[:80]})"
    if isinstance(doc, dict) and doc.get("eventSource") == DYNAMODB_SOURCE and "dynamodb" in doc:
        # A DynamoDB change delivered through Kinesis Data Streams for DynamoDB.
        return _from_change(doc["dynamodb"], doc.get("eventName"), contract)
    value, reason = extract_input(doc, contract)
    return ("poison", None, reason) if reason else ("input", value, "")


def _content_id(record: Any) -> str:
    """An id for a record with neither eventID nor sequence number (never sent by Lambda):
    derived from its content, so two such records don't share a quarantine key."""
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    return f"unidentified-{digest[:16]}"


def decode_records(records: list[Any], kind: EventKind, contract: TextInput | TabularInput) -> list[DecodedRecord]:
    """Decode a whole batch; one :class:`DecodedRecord` per record, in order."""
    expected_source = KINESIS_SOURCE if kind == "kinesis" else DYNAMODB_SOURCE
    out = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            out.append(DecodedRecord(index, _content_id(record), None, "", "poison", reason="record is not an object"))
            continue
        body = record.get("kinesis" if kind == "kinesis" else "dynamodb")
        seq = body.get("sequenceNumber" if kind == "kinesis" else "SequenceNumber") if isinstance(body, dict) else None
        seq = seq if isinstance(seq, str) and seq else None
        record_id = record.get("eventID")
        if not isinstance(record_id, str) or not record_id:
            record_id = seq or _content_id(record)
        arn = record.get("eventSourceARN")
        arn = arn if isinstance(arn, str) else ""
        try:
            if record.get("eventSource") != expected_source:
                status, value, reason = "poison", None, f"eventSource {record.get('eventSource')!r} in a {kind} batch"
            elif seq is None:
                status, value, reason = "poison", None, "record has no sequence number"
            elif kind == "kinesis":
                status, value, reason = _decode_kinesis(record, contract)
            else:
                status, value, reason = _from_change(body, record.get("eventName"), contract)
        except Exception as exc:  # a shape nobody foresaw must still not sink the batch
            status, value, reason = "poison", None, f"undecodable record ({type(exc).__name__})"
        out.append(DecodedRecord(index, record_id, seq, arn, status, value, reason))
    return out
