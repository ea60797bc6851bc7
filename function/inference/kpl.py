"""KPL aggregated records: recognising one, checking it, and unpacking its user records.

The Kinesis Producer Library (KPL) packs many *user records* into one Kinesis record,
and Lambda delivers that record as it is (docs/aws-notes.md §1, "KPL aggregates"). Its
``data``, once base64-decoded, is:

``f3 89 9a c2``
    four magic bytes (:data:`MAGIC`); they are not valid UTF-8 (``0xf3`` needs three
    continuation bytes, and ``0xc2`` is not one), so no JSON payload is taken for one;
protobuf ``AggregatedRecord``
    ``partition_key_table`` (field 1, repeated string), ``explicit_hash_key_table``
    (field 2, repeated string), ``records`` (field 3, repeated ``Record``: field 1
    ``partition_key_index`` uint64, required; field 2 ``explicit_hash_key_index``
    uint64; field 3 ``data`` bytes, required; field 4 ``tags``, repeated ``Tag``);
MD5 digest
    16 bytes: the MD5 of the protobuf bytes (not of the magic).

This module decodes just that message from the protobuf wire format, with no protobuf
library, and reads it as the ``aws-kinesis-agg`` deaggregator (protobuf's upb parser)
does: unknown fields are skipped, a known field number with another wire type is an
unknown field, a missing ``partition_key_index`` or ``data`` takes its default (``0``,
empty), as a proto3 encoder that leaves out zero values writes them. Tags are framed
but not read. Stricter than protobuf, on what no valid producer writes: groups (wire
types 3 and 4), a key that is not UTF-8 (Kinesis partition keys are Unicode), and an
index past its table (the deaggregator stops there and drops the rest). Anything that
fails is :class:`MalformedAggregate`, with a reason that names what is wrong (a field,
a byte offset), never the payload: the caller quarantines the whole aggregate.
A user record's position in ``records`` is its *sub-sequence number*, as the KCL and the
``aws-kinesis-agg`` deaggregator number them (from 0).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: The first four bytes of a KPL aggregate's data.
MAGIC = b"\xf3\x89\x9a\xc2"
#: Length of the MD5 digest that ends an aggregate.
DIGEST_SIZE = 16
#: Protobuf wire types.
_VARINT, _I64, _LEN, _GROUP_START, _GROUP_END, _I32 = 0, 1, 2, 3, 4, 5


class MalformedAggregate(ValueError):
    """The data starts with the KPL magic but is not a valid aggregate; ``str()`` is the reason."""


@dataclass(slots=True, frozen=True)
class UserRecord:
    """One user record out of an aggregate."""

    #: Position in the aggregate (0, 1, …): the KCL's ``subSequenceNumber``.
    sub_sequence: int
    partition_key: str
    explicit_hash_key: str | None
    data: bytes


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it (at most 10 bytes, 64 bits)."""
    result = shift = 0
    while True:
        if pos >= end:
            raise MalformedAggregate(f"truncated varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result >> 64:
                raise MalformedAggregate(f"varint ending at byte {pos} exceeds 64 bits")
            return result, pos
        shift += 7
        if shift >= 70:
            raise MalformedAggregate(f"varint at byte {pos} is longer than 10 bytes")


def _fields(buf: bytes, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """The fields of the message in ``buf[pos:end]``, as ``(number, wire_type, a, b)``.

    For a varint, ``a`` is its value; for a length-delimited field, ``buf[a:b]`` is its
    content; fixed-width fields are skipped (``a == b``).
    """
    out = []
    while pos < end:
        key_at = pos
        key, pos = _varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise MalformedAggregate(f"field number 0 at byte {key_at}")
        if wire_type == _VARINT:
            value, pos = _varint(buf, pos, end)
            out.append((number, wire_type, value, value))
        elif wire_type == _LEN:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise MalformedAggregate(f"field {number} at byte {key_at} runs past the end of its message")
            out.append((number, wire_type, pos, pos + length))
            pos += length
        elif wire_type in (_I64, _I32):
            pos += 8 if wire_type == _I64 else 4
            if pos > end:
                raise MalformedAggregate(f"field {number} at byte {key_at} runs past the end of its message")
        else:  # groups (deprecated, never written by the KPL) and the invalid wire types 6 and 7
            raise MalformedAggregate(f"unsupported wire type {wire_type} at byte {key_at}")
    return out


def _text(buf: bytes, start: int, end: int, what: str) -> str:
    try:
        return buf[start:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedAggregate(f"{what} is not valid UTF-8 (byte {start + exc.start})") from None


def deaggregate(raw: bytes) -> list[UserRecord]:
    """The user records of an aggregate, in order.

    Parameters
    ----------
    raw : bytes
        A Kinesis record's decoded data, starting with :data:`MAGIC` (:mod:`inference.decode` checks).

    Raises
    ------
    MalformedAggregate
        Too short, a digest that does not match, or a protobuf message that is not a valid
        ``AggregatedRecord`` (a truncated field, an index past its table, a key that is
        not UTF-8). Byte offsets count from the protobuf's start.
    """
    if len(raw) <= len(MAGIC) + DIGEST_SIZE:
        raise MalformedAggregate(f"KPL aggregate too short ({len(raw)} bytes)")
    message, digest = raw[len(MAGIC) : -DIGEST_SIZE], raw[-DIGEST_SIZE:]
    if hashlib.md5(message, usedforsecurity=False).digest() != digest:
        raise MalformedAggregate("KPL aggregate's MD5 digest does not match its content")
    partition_keys: list[str] = []
    hash_keys: list[str] = []
    entries: list[tuple[int, int]] = []
    for number, wire, a, b in _fields(message, 0, len(message)):
        if wire != _LEN:
            continue  # a known field number with another wire type is an unknown field, as protobuf reads it
        if number == 1:
            partition_keys.append(_text(message, a, b, f"partition key {len(partition_keys)}"))
        elif number == 2:
            hash_keys.append(_text(message, a, b, f"explicit hash key {len(hash_keys)}"))
        elif number == 3:
            entries.append((a, b))
    records = []
    for sub, (start, end) in enumerate(entries):
        key_index = 0
        hash_index: int | None = None
        data = b""
        for number, wire, a, b in _fields(message, start, end):
            if number == 1 and wire == _VARINT:
                key_index = a
            elif number == 2 and wire == _VARINT:
                hash_index = a
            elif number == 3 and wire == _LEN:
                data = message[a:b]
        if key_index >= len(partition_keys):
            raise MalformedAggregate(
                f"user record {sub} has partition_key_index {key_index}; the table has {len(partition_keys)} keys"
            )
        hash_key = None
        if hash_index is not None and hash_keys:
            if hash_index >= len(hash_keys):
                raise MalformedAggregate(
                    f"user record {sub} has explicit_hash_key_index {hash_index}; the table has {len(hash_keys)} keys"
                )
            hash_key = hash_keys[hash_index]
        records.append(UserRecord(sub, partition_keys[key_index], hash_key, data))
    return records
