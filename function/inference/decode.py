"""Turning each stream record into a model input, a skip, or a poison verdict.

Decoding never raises for a bad record: every record comes back as exactly one
:class:`DecodedRecord` whose ``status`` says what it is. Reasons name what is wrong
(a field, a type, a byte offset), never the record's values: they are logged.

A Kinesis record whose data is a KPL aggregate (:mod:`inference.kpl`) is the one
exception to "one record in, one out": it comes back as one :class:`DecodedRecord` per
user record, in order, each with its own ``record_id`` (the aggregate's ``eventID``
plus ``:<sub-sequence number>``, e.g. ``shardId-000000000000:4959…:2``) and the
aggregate's ``sequence_number`` (the only one Lambda can resume at). They share the
aggregate's ``record_index``: :mod:`inference.batch` retries an aggregate as a whole.
An aggregate with no user records is one ``skip``; one that is malformed (a bad MD5,
broken protobuf) is one ``poison``, under the aggregate's own ``eventID``. Any other
record decodes as before: the only cost the aggregate support adds to it is comparing
its first four bytes. Gzip payloads are decompressed first, when the setting allows it
(:mod:`inference.payload`).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, overload

from .events import DYNAMODB_SOURCE, KINESIS_SOURCE, DynamoDBChange, EventKind, KinesisData, describe_source
from .kpl import MAGIC as KPL_MAGIC
from .kpl import MalformedAggregate, UserRecord, deaggregate
from .manifest import FeatureType, TabularInput, TextInput, feature_types
from .payload import GZIP_MAGIC, PayloadOptions, gunzip

Status = Literal["input", "skip", "poison"]


@dataclass(slots=True, frozen=True)
class DecodedRecord:
    """One record of the batch after decoding (one user record, for a KPL aggregate): a view of
    one position of a :class:`DecodedBatch`, made when it is read (so it is frozen: a change
    goes through the batch, :meth:`DecodedBatch.poison`)."""

    #: Position in the decoded list; the event's record index, unless a KPL aggregate came before.
    index: int
    #: Stable identifier of the record (``eventID``, with ``:<sub-sequence>`` for a KPL
    #: user record); results are keyed by it.
    record_id: str
    #: What Lambda accepts as ``itemIdentifier``; ``None`` when the record has none.
    sequence_number: str | None
    source_arn: str
    status: Status
    #: The model input when ``status == "input"``: a text, or a row of values in feature order
    #: (floats; with a typed contract also ``str``, ``bool``, and NaN / ``None`` for a missing value).
    value: Any = None
    #: Why the record is skipped or poison; logged, so it never quotes the record.
    reason: str = ""
    #: More about a poison verdict that may quote the record (the model's error message):
    #: for the quarantine destination only, never logged.
    detail: str = ""
    #: Position of the stream record in the event's ``Records`` (shared by the user records of an
    #: aggregate). :func:`decode_records` always sets it (-1: not set, read as ``index``); it is passed
    #: by position, as keywords cost more on the hot path.
    record_index: int = -1
    #: The KPL user record this is, or ``None`` for a record that is not an aggregate.
    user_record: UserRecord | None = None


class DecodedBatch(Sequence[DecodedRecord]):
    """The decoded batch as parallel lists, one entry per :class:`DecodedRecord` (position =
    ``index``); reading a position makes its :class:`DecodedRecord`.

    The lists are what the hot loops read (``values`` of the ``statuses == "input"`` positions
    go to the model; ``record_ids``, ``sequence_numbers`` and ``source_arns`` make the
    results): the common record costs six list appends instead of an object. Reasons,
    details and KPL user records are kept by position only where there is one.
    """

    __slots__ = (
        "record_ids",
        "sequence_numbers",
        "source_arns",
        "statuses",
        "values",
        "reasons",
        "details",
        "record_indices",
        "user_records",
    )

    def __init__(self) -> None:
        self.record_ids: list[str] = []
        self.sequence_numbers: list[str | None] = []
        self.source_arns: list[str] = []
        self.statuses: list[Status] = []
        self.values: list[Any] = []
        #: The event's record index of each position (:attr:`DecodedRecord.record_index`).
        self.record_indices: list[int] = []
        self.reasons: dict[int, str] = {}
        self.details: dict[int, str] = {}
        self.user_records: dict[int, UserRecord] = {}

    def __len__(self) -> int:
        return len(self.statuses)

    @overload
    def __getitem__(self, position: int) -> DecodedRecord: ...

    @overload
    def __getitem__(self, position: slice) -> list[DecodedRecord]: ...

    def __getitem__(self, position: int | slice) -> DecodedRecord | list[DecodedRecord]:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError("decoded batch index out of range")
        return DecodedRecord(
            position,
            self.record_ids[position],
            self.sequence_numbers[position],
            self.source_arns[position],
            self.statuses[position],
            self.values[position],
            self.reasons.get(position, ""),
            self.details.get(position, ""),
            self.record_indices[position],
            self.user_records.get(position),
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DecodedBatch | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"DecodedBatch({list(self)!r})"

    def append(self, record: DecodedRecord) -> None:
        """Add ``record`` at the end (its ``index`` is the batch's length: the caller's job)."""
        self.add(
            record.record_id,
            record.sequence_number,
            record.source_arn,
            record.status,
            record.value,
            record.reason,
            record.detail,
            record.record_index if record.record_index >= 0 else len(self),
            record.user_record,
        )

    def extend(self, records: list[DecodedRecord]) -> None:
        for record in records:
            self.append(record)

    def add(
        self,
        record_id: str,
        sequence_number: str | None,
        source_arn: str,
        status: Status,
        value: Any,
        reason: str,
        detail: str,
        record_index: int,
        user_record: UserRecord | None = None,
    ) -> None:
        """Add one record, field by field."""
        position = len(self.statuses)
        self.record_ids.append(record_id)
        self.sequence_numbers.append(sequence_number)
        self.source_arns.append(source_arn)
        self.statuses.append(status)
        self.values.append(value)
        self.record_indices.append(record_index)
        if reason:
            self.reasons[position] = reason
        if detail:
            self.details[position] = detail
        if user_record is not None:
            self.user_records[position] = user_record

    def poison(self, position: int, reason: str, detail: str) -> None:
        """Turn the input at ``position`` into poison (the model failed on it alone)."""
        self.statuses[position], self.reasons[position], self.details[position] = "poison", reason, detail


_deserializer = None
_DEFAULT_OPTIONS = PayloadOptions()
#: First bytes of a KPL aggregate (``f3``) and of a gzip stream (``1f``); no JSON text starts with either.
_WRAPPED_FIRST_BYTES = frozenset((KPL_MAGIC[0], GZIP_MAGIC[0]))


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
    ``payload``, an HTTP ``instance``). A tabular contract's features are each of their type
    (``number``: an int, float or Decimal, finite; ``string``; ``bool``); ``null`` or an absent
    field is a missing value, which only the features of the contract's ``accepts_missing``
    may have: the reason names any other. A contract without ``types`` and ``accepts_missing``
    (every manifest before typed features) takes floats only, none missing.

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
    entry = _plans.get(id(contract))  # _plan(contract), without the call on the hot path
    plan = entry[1] if entry is not None and entry[0] is contract else _plan(contract)
    if plan is not None:
        return _typed_row(doc, plan)
    row = []
    for name in contract["features"]:
        if name not in doc:
            return None, f"missing feature {name!r}"
        raw = doc[name]
        if isinstance(raw, bool) or not isinstance(raw, (int, float, Decimal)):
            if raw is None and "types" in contract:
                return None, _refused_null(name)
            return None, f"feature {name!r} is {type(raw).__name__}, expected a number"
        try:
            number = float(raw)
        except (OverflowError, ValueError):  # an int beyond float range, a signaling NaN Decimal
            number = math.nan
        if not math.isfinite(number):
            return None, f"feature {name!r} is {str(raw)[:40]}, expected a finite number"
        row.append(number)
    return row, ""


_Plan = tuple[tuple[str, FeatureType, bool], ...]
#: Each tabular contract's per-feature plan, ``(name, type, may be missing)``, or ``None`` when
#: every feature is a number that may not be missing (the plain loop of :func:`extract_input`
#: reads those faster). Keyed by the contract's id; the entry's first item, the contract
#: itself, keeps the id from being reused and confirms it.
_plans: dict[int, tuple[TabularInput, _Plan | None]] = {}


def _plan(contract: TabularInput) -> _Plan | None:
    entry = _plans.get(id(contract))
    if entry is None or entry[0] is not contract:
        missing_ok = set(contract.get("accepts_missing", ()))
        types = feature_types(contract)
        plan = tuple((n, t, n in missing_ok) for n, t in zip(contract["features"], types))
        if len(_plans) > 64:  # contracts built per call (tests, the fuzzer): keep the cache small
            _plans.clear()
        entry = _plans[id(contract)] = (contract, None if all(t == "number" and not m for _, t, m in plan) else plan)
    return entry[1]


def _refused_null(name: str) -> str:
    return f"feature {name!r} is null, and the model does not accept missing values"


def _typed_row(doc: dict[str, Any], plan: _Plan) -> tuple[list[Any] | None, str]:
    """A typed contract's row: a float per ``number``, a ``str`` per ``string``, a ``bool`` per ``bool``;
    a missing value (``null`` or absent) as NaN (``number``) or ``None`` (the others), only where the
    contract accepts it (:data:`inference.manifest.TabularInput`'s ``accepts_missing``)."""
    row: list[Any] = []
    for name, kind, nullable in plan:
        raw = doc.get(name)
        if raw is None:
            if not nullable:
                return None, _refused_null(name) if name in doc else f"missing feature {name!r}"
            row.append(math.nan if kind == "number" else None)
        elif kind == "number":
            if isinstance(raw, bool) or not isinstance(raw, (int, float, Decimal)):
                return None, f"feature {name!r} is {type(raw).__name__}, expected a number"
            try:
                number = float(raw)
            except (OverflowError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                return None, f"feature {name!r} is {str(raw)[:40]}, expected a finite number (null for a missing one)"
            row.append(number)
        elif kind == "string":
            if not isinstance(raw, str):
                return None, f"feature {name!r} is {type(raw).__name__}, expected a string"
            row.append(raw)
        elif isinstance(raw, bool):
            row.append(raw)
        else:
            return None, f"feature {name!r} is {type(raw).__name__}, expected true or false"
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


def _decode_kinesis(
    body: KinesisData, contract: TextInput | TabularInput, options: PayloadOptions
) -> tuple[Status, Any, str] | list[UserRecord]:
    """A Kinesis record's payload, from its ``kinesis`` object (a dict: it has a sequence number).

    A KPL aggregate comes back as its list of user records, for :func:`decode_records`
    to decode each with :func:`_decode_data`; a malformed one as a poison verdict.
    """
    try:
        # base64.b64decode(data, validate=True) is exactly this call, behind two Python frames.
        raw = binascii.a2b_base64(body["data"], strict_mode=True)
    except (binascii.Error, ValueError, TypeError):
        return "poison", None, "data is not valid base64"
    except KeyError:
        return "poison", None, "record has no kinesis.data"
    if raw and raw[0] in _WRAPPED_FIRST_BYTES:  # one test for a plain JSON payload; a closer look otherwise
        if raw[:4] == KPL_MAGIC:
            try:
                users = deaggregate(raw)
            except MalformedAggregate as exc:
                return "poison", None, str(exc)
            return users or ("skip", None, "KPL aggregate holds no user records")
        return _decode_data(raw, contract, options)
    return _decode_json(raw, contract)


def _decode_data(raw: bytes, contract: TextInput | TabularInput, options: PayloadOptions) -> tuple[Status, Any, str]:
    """A payload's bytes (a KPL user record's, or a plain record's that may be gzip): gzip, then JSON."""
    if raw[:2] == GZIP_MAGIC and options.compression == "auto":
        data, reason = gunzip(raw, options.max_decompressed_bytes)
        if data is None:
            return "poison", None, reason
        raw = data
    return _decode_json(raw, contract)


def _decode_json(raw: bytes, contract: TextInput | TabularInput) -> tuple[Status, Any, str]:
    """A payload's bytes, uncompressed: UTF-8, JSON, then the model input (or a DynamoDB change)."""
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


def _user_records(
    users: list[UserRecord],
    start: int,
    record_index: int,
    record_id: str,
    seq: str,
    arn: str,
    contract: TextInput | TabularInput,
    options: PayloadOptions,
) -> list[DecodedRecord]:
    """One :class:`DecodedRecord` per user record of an aggregate, from position ``start`` on."""
    out = []
    for offset, user in enumerate(users):
        status, value, reason = _decode_data(user.data, contract, options)
        out.append(
            DecodedRecord(
                start + offset,
                f"{record_id}:{user.sub_sequence}",
                seq,
                arn,
                status,
                value,
                reason,
                "",
                record_index,
                user,
            )
        )
    return out


def source_record(records: list[Any], decoded: DecodedRecord) -> Any:
    """The stream record that ``decoded`` came from, as the quarantine keeps it.

    For a KPL user record: a Kinesis record of its own, shaped like those the
    ``aws-kinesis-agg`` deaggregator emits (the aggregate's record with ``eventID`` set
    to the user record's id, and ``kinesis`` holding the user record's ``data``
    base64-encoded, ``partitionKey``, ``explicitHashKey``, ``subSequenceNumber`` and
    ``aggregated: true``): replayed through the function, it is scored under the same id.
    """
    record = records[decoded.record_index if decoded.record_index >= 0 else decoded.index]
    user = decoded.user_record
    if user is None:
        return record
    kinesis = {
        **record["kinesis"],
        "data": binascii.b2a_base64(user.data, newline=False).decode("ascii"),
        "partitionKey": user.partition_key,
        "explicitHashKey": user.explicit_hash_key,
        "subSequenceNumber": user.sub_sequence,
        "aggregated": True,
    }
    return {**record, "eventID": decoded.record_id, "kinesis": kinesis}


#: The C scanner behind :func:`json.loads` (``JSONDecoder().scan_once``): one value from a
#: position, without ``json.loads``' two Python frames and whitespace handling.
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode_records(
    records: list[Any],
    kind: EventKind,
    contract: TextInput | TabularInput,
    options: PayloadOptions | None = None,
    *,
    fast: bool = True,
) -> DecodedBatch:
    """Decode a whole batch; one :class:`DecodedRecord` per record (per user record of a KPL
    aggregate), in order, as a :class:`DecodedBatch`.

    ``records`` are whatever the caller sent. Lambda sends
    :class:`~inference.events.KinesisStreamRecord` or
    :class:`~inference.events.DynamoDBStreamRecord` objects, but every field is tested
    before it is used: a record that breaks the shape is poison. ``options`` say how
    Kinesis payloads are read (default: :class:`~inference.payload.PayloadOptions`'s).

    The common record, a well-formed Kinesis record whose data is a JSON object holding the
    text field as a string, takes a fast path: every test of the general path, made as plain
    lookups whose failure (a missing key, another type, bad base64, bad UTF-8, JSON that the
    scanner does not read to its end) sends that one record down the general path, which
    gives its verdict and reason. So both paths agree on every record; the fast one only
    skips ``json.loads``' wrappers and the per-field ``isinstance`` tests. ``fast=False`` sends
    every record down the general path (the tests compare the two).
    """
    options = options or _DEFAULT_OPTIONS
    expected_source = KINESIS_SOURCE if kind == "kinesis" else DYNAMODB_SOURCE
    out = DecodedBatch()
    field = contract["field"] if fast and kind == "kinesis" and contract["kind"] == "text" else None
    add_id, add_seq, add_arn = out.record_ids.append, out.sequence_numbers.append, out.source_arns.append
    add_status, add_value, add_index = out.statuses.append, out.values.append, out.record_indices.append
    for index, record in enumerate(records):
        if field is not None:
            try:
                body: Any = record["kinesis"] if type(record) is dict else None
                seq = body["sequenceNumber"] if type(body) is dict else None
                record_id = record["eventID"]
                arn = record["eventSourceARN"]
                if (
                    type(seq) is str
                    and seq
                    and type(record_id) is str
                    and record_id
                    and type(arn) is str
                    and record["eventSource"] == KINESIS_SOURCE
                ):
                    raw = binascii.a2b_base64(body["data"], strict_mode=True)
                    if raw and raw[0] not in _WRAPPED_FIRST_BYTES:
                        text = raw.decode()
                        doc, end = _scan_json(text, 0)
                        if end == len(text) and type(doc) is dict and "eventSource" not in doc:
                            value = doc[field]
                            if type(value) is str:
                                add_id(record_id)
                                add_seq(seq)
                                add_arn(arn)
                                add_status("input")
                                add_value(value)
                                add_index(index)
                                continue
            except Exception:  # any deviation: the general path below decides, and says why
                pass
        _decode_record(record, index, kind, expected_source, contract, options, out)
    return out


def _decode_record(
    record: Any,
    index: int,
    kind: EventKind,
    expected_source: str,
    contract: TextInput | TabularInput,
    options: PayloadOptions,
    out: DecodedBatch,
) -> None:
    """Decode the event's record ``index``, appending its :class:`DecodedRecord` (or, for a KPL
    aggregate, one per user record) to ``out``: every field tested before it is used."""
    status: Status
    if not isinstance(record, dict):
        out.append(
            DecodedRecord(
                len(out),
                _content_id(record, index),
                None,
                "",
                "poison",
                None,
                "record is not an object",
                "",
                index,
            )
        )
        return
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
            payload = _decode_kinesis(body, contract, options)
            if isinstance(payload, list):  # a KPL aggregate (seq is a str here: tested above)
                out.extend(_user_records(payload, len(out), index, record_id, seq, arn, contract, options))
                return
            status, value, reason = payload
        else:
            status, value, reason = _from_change(body, record.get("eventName"), contract)
    except Exception as exc:  # a shape nobody foresaw must still not sink the batch
        status, value, reason = "poison", None, f"undecodable record ({type(exc).__name__})"
    out.append(DecodedRecord(len(out), record_id, seq, arn, status, value, reason, "", index))
