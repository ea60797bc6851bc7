"""Results that join back: each result can carry its source record's own key (``RESULT_KEYS``).

``RESULT_KEYS`` is a comma-separated list of what to carry (default: nothing):

``keys``
    The DynamoDB item's primary key: the stream record's ``dynamodb.Keys`` (also for a
    DynamoDB change delivered through Kinesis), e.g. ``{"pk": "customer#7", "sk": 3}``.
``partition_key``
    The Kinesis record's partition key (a KPL user record's own).
``field:NAME``
    The field ``NAME`` of the payload (a Kinesis record's JSON document; a DynamoDB change's
    ``NewImage`` attribute), e.g. ``field:customer_id``.

A result then holds ``key``: an object with the members asked for that the record has
(``keys``, ``partition_key``, ``fields``), e.g. ``{"partition_key": "c-7", "fields": {"customer_id":
7}}``; a member the record lacks is left out (a record without any has no ``key``). DynamoDB
attribute values become plain JSON: ``N`` an int or a float, ``B`` its base64 text, sets lists.

Results stay keyed by ``record_id`` (a redelivered record overwrites its result in DynamoDB and
S3; Kinesis consumers deduplicate by it): ``key`` is for joining a prediction to its source
item, e.g. a results table item's ``key.keys`` to the source table's key. Fields are read from
the payload again, after decoding, only when ``field:`` is asked for: JSON is parsed twice then.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .decode import DecodedRecord
from .events import DYNAMODB_SOURCE
from .payload import GZIP_MAGIC, PayloadOptions, gunzip

#: What ``RESULT_KEYS`` may name besides ``field:NAME``.
KEY_KINDS = ("keys", "partition_key")


@dataclass(frozen=True)
class ResultKeys:
    """What each result carries of its record (parsed ``RESULT_KEYS``)."""

    keys: bool = False
    partition_key: bool = False
    fields: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.keys or self.partition_key or bool(self.fields)


def parse_result_keys(text: str | None) -> ResultKeys:
    """``RESULT_KEYS`` as :class:`ResultKeys`.

    Raises
    ------
    ValueError
        An item that is none of ``keys``, ``partition_key``, ``field:NAME``, naming it.
    """
    keys = partition_key = False
    fields: list[str] = []
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        if item == "keys":
            keys = True
        elif item == "partition_key":
            partition_key = True
        elif item.startswith("field:") and item.removeprefix("field:").strip():
            fields.append(item.removeprefix("field:").strip())
        else:
            raise ValueError(
                f"RESULT_KEYS item {item!r} is none of keys (a DynamoDB item's key), partition_key (a Kinesis "
                "record's) or field:NAME (a payload field), e.g. RESULT_KEYS=partition_key,field:customer_id"
            )
    return ResultKeys(keys, partition_key, tuple(dict.fromkeys(fields)))


def result_keys_from_env(env: Mapping[str, str]) -> ResultKeys:
    """The environment's ``RESULT_KEYS`` (:func:`parse_result_keys`)."""
    return parse_result_keys(env.get("RESULT_KEYS"))


def plain_attribute(value: Any) -> Any:
    """A DynamoDB attribute value (``{"S": "x"}``, ``{"N": "1.5"}``, ...) as plain JSON.

    ``N`` becomes an ``int`` when integral, else a ``float``; ``B`` stays the base64 text a Lambda
    event carries; sets become lists; ``M`` and ``L`` are converted member by member. Anything
    else is ``None``.
    """
    if not isinstance(value, dict) or len(value) != 1:
        return None
    (kind, inner), *_ = value.items()
    if kind in ("S", "B", "BOOL"):
        return inner
    if kind == "NULL":
        return None
    if kind == "N":
        return _number(inner)
    if kind in ("SS", "BS"):
        return list(inner) if isinstance(inner, list) else None
    if kind == "NS":
        return [_number(n) for n in inner] if isinstance(inner, list) else None
    if kind == "L":
        return [plain_attribute(v) for v in inner] if isinstance(inner, list) else None
    if kind == "M":
        return {k: plain_attribute(v) for k, v in inner.items()} if isinstance(inner, dict) else None
    return None


def _number(text: Any) -> int | float | None:
    try:
        number = Decimal(str(text))
    except ArithmeticError:
        return None
    if not number.is_finite():
        return None
    return int(number) if number == number.to_integral_value() else float(number)


def _change_key(change: Any, wanted: ResultKeys) -> dict[str, Any]:
    """``keys`` / ``fields`` of a DynamoDB change (a stream record's ``dynamodb``)."""
    out: dict[str, Any] = {}
    if not isinstance(change, dict):
        return out
    if wanted.keys and isinstance(change.get("Keys"), dict):
        out["keys"] = {name: plain_attribute(v) for name, v in change["Keys"].items()}
    image = change.get("NewImage")
    if wanted.fields and isinstance(image, dict):
        fields = {name: plain_attribute(image[name]) for name in wanted.fields if name in image}
        if fields:
            out["fields"] = fields
    return out


def _kinesis_document(record: dict[str, Any], decoded: DecodedRecord, options: PayloadOptions) -> Any:
    """The JSON document of a Kinesis record (of its KPL user record), or ``None`` if it has none."""
    if decoded.user_record is not None:
        raw = decoded.user_record.data
    else:
        try:
            raw = binascii.a2b_base64(record["kinesis"]["data"], strict_mode=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            return None
    if raw[:2] == GZIP_MAGIC and options.compression == "auto":
        data, _ = gunzip(raw, options.max_decompressed_bytes)
        if data is None:
            return None
        raw = data
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def record_key(
    wanted: ResultKeys, record: Any, decoded: DecodedRecord, options: PayloadOptions | None = None
) -> dict[str, Any] | None:
    """The ``key`` a result carries for ``record`` (the stream record ``decoded`` came from).

    Returns ``None`` when nothing is asked for or the record has none of it.
    """
    if not wanted or not isinstance(record, dict):
        return None
    out: dict[str, Any] = {}
    if record.get("eventSource") == DYNAMODB_SOURCE:
        out = _change_key(record.get("dynamodb"), wanted)
    else:
        kinesis = record.get("kinesis")
        if wanted.partition_key:
            key = decoded.user_record.partition_key if decoded.user_record is not None else None
            key = key or (kinesis.get("partitionKey") if isinstance(kinesis, dict) else None)
            if isinstance(key, str):
                out["partition_key"] = key
        if wanted.keys or wanted.fields:
            doc = _kinesis_document(record, decoded, options or PayloadOptions())
            if isinstance(doc, dict) and doc.get("eventSource") == DYNAMODB_SOURCE:  # routed through Kinesis
                out |= _change_key(doc.get("dynamodb"), wanted)
            elif isinstance(doc, dict) and wanted.fields:
                fields = {name: doc[name] for name in wanted.fields if name in doc}
                if fields:
                    out["fields"] = fields
    return out or None
