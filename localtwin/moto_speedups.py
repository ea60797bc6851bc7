"""moto's slow paths replaced, for the demo and the soak only (``--fast-moto``): the same answers, faster.

Imported only by the endpoint process (:mod:`localtwin.endpoint`) when it is started with
``--fast-moto`` (:class:`localtwin.embedded_aws.EmbeddedAWS` ``fast_moto=True``, the demo's and
the soak's ``--fast-moto``): the replacements live and die with that process, so stock moto is
what every test runs against, except the tests that compare the two
(``tests/test_embedded_aws.py``, ``tests/test_esm.py``, ``tests/test_replay.py``).

These replace private moto internals, pinned to one moto version (``requirements.txt``):
every replacement either computes what moto computes with less work, or hands the call to
moto's own code (:data:`MOTO_ORIGINALS`) when the input is not the plain case. Why they exist
(moto's O(N²) reads and per-attribute work) and how to reproduce each cost on stock moto:
docs/moto-performance.md.
"""

from __future__ import annotations

import base64
import bisect
import calendar
import contextvars
import json
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

#: moto functions replaced by :func:`speed_up_moto`: ``(class or module, name) -> original``.
MOTO_ORIGINALS: dict[tuple[Any, str], Any] = {}


def _json_time(value: datetime) -> int | float:
    """Epoch seconds truncated to the millisecond, as moto's serialiser writes them."""
    utc = value.astimezone(UTC) if value.tzinfo else value
    seconds = calendar.timegm(utc.timetuple())
    return seconds + (utc.microsecond // 1000) / 1000.0 if utc.microsecond else seconds


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _json_time(value)
    if isinstance(value, bytes | bytearray):  # B / BS attribute values
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _kinesis_get_records_json(self: Any) -> str:
    """``KinesisResponse.get_records`` answered with plain ``json.dumps``."""
    next_iterator, records, millis_behind = self.kinesis_backend.get_records(
        self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
    )
    out = []
    for record in records:
        item = record.to_json()
        item["Data"] = base64.b64encode(item["Data"]).decode()
        item["ApproximateArrivalTimestamp"] = _json_time(item["ApproximateArrivalTimestamp"])
        out.append(item)
    return json.dumps({"NextShardIterator": next_iterator, "Records": out, "MillisBehindLatest": millis_behind})


def _streams_get_records_json(self: Any) -> str:
    """``DynamoDBStreamsHandler.get_records`` answered with plain ``json.dumps``."""
    limit = self._get_param("Limit")
    result = self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit)
    return json.dumps(result, default=_json_default)


def _kinesis_get_max_sequence_number(self: Any) -> int:
    return next(reversed(self.records)) if self.records else 0


def _kinesis_shard_get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    records = self.records
    last = int(last_sequence_id)
    if not records:
        return [], last, 0
    first, newest = next(iter(records)), next(reversed(records))
    if newest - first + 1 != len(records):  # not consecutive: moto's own walk
        walked: tuple[list[Any], int, int] = MOTO_ORIGINALS[(type(self), "get_records")](self, last_sequence_id, limit)
        return walked
    if last >= newest:
        return [], last, 0
    start = max(0, last - first + 1)
    results = list(islice(records.values(), start, None if limit is None else start + limit))
    behind = records[newest].created_at - results[-1].created_at
    return results, results[-1].sequence_number, int(behind * 1000)


# --- the DynamoDB write path and scans (the demo's results table) ----------------------

#: moto's item size limit (``LimitedSizeDict``: between DynamoDB's 400 KB and the ~410 KB it accepts).
_ITEM_SIZE_LIMIT = 405_000
#: Attribute values whose wire form moto's JSON parser passes through unchanged.
_PLAIN_ATTRIBUTE = {"S": str, "N": str, "BOOL": bool, "NULL": bool}
_method_names: dict[type, list[str]] = {}


def _plain_attribute(value: Any) -> dict[str, Any] | None:
    """``{"S": "x"}``, ``{"N": "1"}``, ``{"BOOL": true}`` or ``{"NULL": true}`` as moto's
    JSON parser returns it (a copy); None for anything else, which is left to moto."""
    if type(value) is dict and len(value) == 1:
        for kind, inner in value.items():
            if type(inner) is _PLAIN_ATTRIBUTE.get(kind):
                return {kind: inner}
    return None


def _plain_json(result: Any) -> str | None:
    """``json.dumps`` of a result made of JSON types only; None if it holds anything else
    (bytes, datetimes: moto's serialiser knows how to write those)."""

    def refuse(value: Any) -> Any:
        raise TypeError(type(value).__name__)

    try:
        return json.dumps(result, default=refuse)
    except (TypeError, ValueError):
        return None


def _write_path_patches() -> dict[tuple[Any, str], Any]:
    """Replacements for moto's DynamoDB write path, Scan and PutRecords answers.

    Each either computes what moto computes, with less work, or hands the call to
    moto's own code (``MOTO_ORIGINALS``) when the input is not the plain case.
    """
    import moto.backends
    import moto.core.responses
    from moto.core.parse import JSONParser
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.models.utilities import bytesize
    from moto.dynamodb.responses import DynamoHandler
    from moto.kinesis.responses import KinesisResponse

    scan_from: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("scan_from", default=None)

    def is_attribute_value(parser: Any, shape: Any) -> bool:
        return (
            shape.name == "AttributeValue"
            and parser.MAP_TYPE is dict
            and parser.operation_model.metadata.get("endpointPrefix") == "dynamodb"
        )

    def parse_structure(self: Any, shape: Any, value: Any) -> Any:
        # moto walks all ten members of AttributeValue for every attribute of every item.
        if is_attribute_value(self, shape):
            plain = _plain_attribute(value)
            if plain is not None:
                return plain
        return MOTO_ORIGINALS[(JSONParser, "_parse_structure")](self, shape, value)

    def parse_map(self: Any, shape: Any, value: Any) -> Any:
        if type(value) is dict and shape.key.type_name == "string" and is_attribute_value(self, shape.value):
            parsed = {}
            for key, attribute in value.items():
                plain = _plain_attribute(attribute)
                parsed[key] = plain if plain is not None else self._parse_shape(shape.value, attribute)
            return parsed
        return MOTO_ORIGINALS[(JSONParser, "_parse_map")](self, shape, value)

    def item_init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        # moto's LimitedSizeDict re-adds every stored attribute's size for each new one
        # (O(k²) per item); a running total has the same limit, hit at the same attribute.
        self.hash_key = hash_key
        self.range_key = range_key
        self.attrs = LimitedSizeDict()
        size = 0
        for key, value in attrs.items():
            typed = DynamoType(value)
            size += bytesize(str(key)) + typed.size()
            if size > _ITEM_SIZE_LIMIT:
                raise ItemSizeTooLarge
            dict.__setitem__(self.attrs, key, typed)

    def size(self: Any) -> int:
        # DynamoType.size tests for six other types before it reaches S; same figures.
        kind, value = self.type, self.value
        if kind == "S" and type(value) is str:
            return len(value.encode("utf-8"))
        if kind == "N":
            return len(str(value))
        size: int = MOTO_ORIGINALS[(DynamoType, "size")](self)
        return size

    def by_hash_key(table: Any) -> tuple[list[Any], list[Any]] | None:
        """A hash-only table's items sorted as moto sorts them, with their sort keys."""
        if table.range_key_attr is not None:
            return None
        items = list(table.items.values())
        kinds = {item.hash_key.type for item in items}
        if not kinds <= {"S", "N"} or len(kinds) > 1:
            return None
        kind = kinds.pop() if kinds else "S"
        # DynamoType.__lt__ compares cast values (the string; a number as a Decimal):
        # sorting by them gives moto's order.
        pairs = sorted(
            ((item.hash_key.value if kind == "S" else Decimal(item.hash_key.value), item) for item in items),
            key=lambda pair: pair[0],
        )
        return [item for _, item in pairs], [key for key, _ in pairs]

    def all_items(self: Any) -> list[Any]:
        # Scan sorts the whole table for every page, comparing DynamoType objects.
        suffix = scan_from.get()
        if suffix is not None:
            return suffix
        ordered = by_hash_key(self)
        return ordered[0] if ordered is not None else MOTO_ORIGINALS[(Table, "all_items")](self)

    def table_scan(
        self: Any,
        filters: Any,
        limit: Any,
        exclusive_start_key: Any,
        filter_expression: Any = None,
        index_name: Any = None,
        consistent_read: bool = False,
        projection_expression: Any = None,
        segments: Any = (None, None),
    ) -> Any:
        # A page after the first walks the items before ExclusiveStartKey one by one
        # (skipping those at or below it); in a hash-only table sorted by its S or N key
        # they are the ones a binary search finds, so the walk starts after them.
        original = MOTO_ORIGINALS[(Table, "scan")]
        rest = (filter_expression, index_name, consistent_read, projection_expression)
        start = exclusive_start_key
        ordered = by_hash_key(self) if start and not index_name and segments == (None, None) else None
        if ordered is None or not isinstance(start, dict) or list(start) != [self.hash_key_attr]:
            return original(self, filters, limit, exclusive_start_key, *rest, segments=segments)
        items, keys = ordered
        try:
            typed = DynamoType(start[self.hash_key_attr])
            usable = typed.type in ("S", "N") and all(item.hash_key.type == typed.type for item in items[:1])
            first = bisect.bisect_right(keys, typed.cast_value) if usable else None
        except Exception:  # noqa: BLE001 - a malformed key: moto's own code raises its error
            first = None
        if first is None:
            return original(self, filters, limit, exclusive_start_key, *rest, segments=segments)
        token = scan_from.set(items[first:])
        try:
            return original(self, filters, limit, None, *rest, segments=segments)
        finally:
            scan_from.reset(token)

    def scan(self: Any) -> Any:
        # moto's generic serialiser costs about 0.5 ms per scanned item.
        result = MOTO_ORIGINALS[(DynamoHandler, "scan")](self)
        body = _plain_json(result.result)
        return result if body is None else body

    def put_records(self: Any) -> Any:
        result = MOTO_ORIGINALS[(KinesisResponse, "put_records")](self)
        entries = result.result.get("Records") if isinstance(result.result, dict) else None
        if not isinstance(entries, list) or not all(type(v) is str for e in entries for v in e.values()):
            return result
        body = _plain_json(result.result)
        return result if body is None else body

    modules = tuple(moto.backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        # moto lists its package directory on every request to route it.
        return modules

    def method_names_from_class(clazz: Any) -> list[str]:
        # inspect.getmembers of the action class, on every request.
        names = _method_names.get(clazz)
        if names is None:
            names = _method_names[clazz] = MOTO_ORIGINALS[(moto.core.responses, "method_names_from_class")](clazz)
        return list(names)

    return {
        (JSONParser, "_parse_structure"): parse_structure,
        (JSONParser, "_parse_map"): parse_map,
        (Item, "__init__"): item_init,
        (DynamoType, "size"): size,
        (Table, "all_items"): all_items,
        (Table, "scan"): table_scan,
        (DynamoHandler, "scan"): scan,
        (KinesisResponse, "put_records"): put_records,
        (moto.backends, "list_of_moto_modules"): list_of_moto_modules,
        (moto.core.responses, "method_names_from_class"): method_names_from_class,
    }


def speed_up_moto() -> bool:
    """Make moto's Kinesis and DynamoDB Streams reads and DynamoDB writes scale; the answers stay the same.

    moto 5.x keeps a Kinesis shard's records in an ordered dict keyed by consecutive
    integer sequence numbers, but finds the newest key with ``list(keys)[-1]`` on every
    put and walks from the first record on every GetRecords (O(N²) for N records), and
    it serialises every GetRecords answer member by member through its generic
    model-driven serialiser (about 1 ms per DynamoDB stream record). The replacements
    look up the start directly and answer GetRecords with ``json.dumps`` (both services
    use the JSON protocol).

    The DynamoDB write path (BatchWriteItem from the function's results sink) is sped
    up where moto does avoidable work for each request, item and attribute: plain
    attribute values (S, N, BOOL, NULL) skip the model-driven parser, an item's size is
    added up once instead of once per attribute (and a string's or number's size is
    found without testing six other types first), and two per-request lookups (moto's
    package listing, an action class's method names) are made once. A Scan of a table
    with only a hash key (S or N) sorts by the key values instead of comparing
    ``DynamoType`` objects and starts a page at its ExclusiveStartKey by binary search
    instead of walking the items before it; Scan and PutRecords answers made of plain
    JSON types are written with ``json.dumps``.

    Idempotent; returns whether the patch is in place (False, changing nothing, on a
    moto that lacks the methods).
    """
    try:
        from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
        from moto.kinesis.models import Shard
        from moto.kinesis.responses import KinesisResponse

        write_path = _write_path_patches()
    except ImportError:  # pragma: no cover - moto is pinned
        return False
    patches = {
        (Shard, "get_max_sequence_number"): _kinesis_get_max_sequence_number,
        (Shard, "get_records"): _kinesis_shard_get_records,
        (KinesisResponse, "get_records"): _kinesis_get_records_json,
        (DynamoDBStreamsHandler, "get_records"): _streams_get_records_json,
        **write_path,
    }
    if not all(hasattr(owner, name) for owner, name in patches):
        return False
    for (owner, name), replacement in patches.items():
        if (owner, name) not in MOTO_ORIGINALS:
            MOTO_ORIGINALS[(owner, name)] = getattr(owner, name)
            setattr(owner, name, replacement)
    return True


def restore_moto() -> None:
    """Undo :func:`speed_up_moto`."""
    for (owner, name), original in list(MOTO_ORIGINALS.items()):
        setattr(owner, name, original)
        del MOTO_ORIGINALS[(owner, name)]
    _method_names.clear()
