"""Compressed payloads: the ``PAYLOAD_COMPRESSION`` setting and a bounded gunzip.

With ``PAYLOAD_COMPRESSION=auto`` (the default), a Kinesis payload (a plain record's
data, or a KPL user record's) that starts with the gzip magic bytes ``1f 8b`` is
decompressed before it is read as UTF-8 JSON. No JSON text starts with those bytes
(``0x1f`` is a control character, ``0x8b`` is not valid UTF-8 at a character's start),
so ``auto`` never changes how a record that scores without it is read: it only
rescues gzip payloads, which would otherwise all be quarantined as "not valid UTF-8".
``none`` turns it off: gzip payloads are then quarantined like any other non-UTF-8 data.

A payload is decompressed to at most ``PAYLOAD_MAX_DECOMPRESSED_BYTES`` bytes (default
1 MiB, a Kinesis record's default maximum size: gzip never lets a record carry more
than a producer could have sent uncompressed); past that, decompression stops and the
record is quarantined, so a decompression bomb costs at most that much memory and
time. Concatenated gzip members (RFC 1952 allows them) count towards the same cap. A
truncated or corrupt stream (a bad CRC-32 or length trailer, trailing bytes) is
quarantined with zlib's reason, which never quotes the data.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: The first two bytes of a gzip stream (RFC 1952).
GZIP_MAGIC = b"\x1f\x8b"
COMPRESSION_MODES = ("auto", "none")
#: Default cap on one payload's decompressed size (bytes): 1 MiB.
DEFAULT_MAX_DECOMPRESSED_BYTES = 1_048_576
#: zlib's window bits for a gzip wrapper only (header and CRC-32 / ISIZE trailer checked).
_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(slots=True, frozen=True)
class PayloadOptions:
    """How Kinesis payloads are read (from the environment: :func:`options_from_env`)."""

    compression: Literal["auto", "none"] = "auto"
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES


def options_from_env(env: Mapping[str, str]) -> PayloadOptions:
    """``PAYLOAD_COMPRESSION`` and ``PAYLOAD_MAX_DECOMPRESSED_BYTES``, checked.

    Raises
    ------
    ValueError
        A value that is not one of the accepted ones; the message names the variable and
        what it accepts.
    """
    mode = env.get("PAYLOAD_COMPRESSION", "auto").strip().lower() or "auto"
    if mode not in COMPRESSION_MODES:
        raise ValueError(f"PAYLOAD_COMPRESSION={mode!r} is not one of {', '.join(COMPRESSION_MODES)}")
    raw_cap = env.get("PAYLOAD_MAX_DECOMPRESSED_BYTES", "").strip()
    cap = DEFAULT_MAX_DECOMPRESSED_BYTES
    if raw_cap:
        if not raw_cap.isdigit() or int(raw_cap) < 1:
            raise ValueError(f"PAYLOAD_MAX_DECOMPRESSED_BYTES={raw_cap!r} must be a positive whole number of bytes")
        cap = int(raw_cap)
    return PayloadOptions("auto" if mode == "auto" else "none", cap)


def gunzip(raw: bytes, limit: int) -> tuple[bytes | None, str]:
    """Decompress the gzip stream ``raw`` (one or more members) to at most ``limit`` bytes.

    Returns
    -------
    (data, reason)
        ``data`` is the decompressed bytes, or ``None`` with ``reason`` saying why: too
        large, truncated, corrupt, or followed by bytes that are not another member.
    """
    out: list[bytes] = []
    size = 0
    rest = raw
    while True:
        stream = zlib.decompressobj(_GZIP_WBITS)
        try:
            chunk = stream.decompress(rest, limit - size + 1)
        except zlib.error as exc:  # zlib's messages are fixed phrases ("invalid block type")
            return None, f"data is not a valid gzip stream ({exc})"
        size += len(chunk)
        if size > limit:
            return None, f"gzip data decompresses to more than {limit:,} bytes (PAYLOAD_MAX_DECOMPRESSED_BYTES)"
        out.append(chunk)
        if not stream.eof:
            return None, "gzip stream is truncated"
        rest = stream.unused_data
        if not rest:
            return b"".join(out), ""
        if rest[:2] != GZIP_MAGIC:
            return None, f"{len(rest)} bytes after the gzip stream are not another gzip member"
