"""Compact id sets: sorted ids as delta-encoded unsigned LEB128 varints, the whole object zlib-compressed.

AC's ids are positive integers that only grow (auto-increment), so the deltas of a sorted set are small:
a dense run of ids costs one byte per id before compression and next to nothing after it; 100,000
contact ids with gaps cost about 100 KB before compression (docs/live.md has the measured sizes).

An object: zlib(header JSON + b"\\n" + the blobs one after another); the header names each blob's
resource, id count and byte length, and whatever the caller adds (connection, generation, time).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping

VERSION = 1
LEVEL = 6


class Unreadable(ValueError):
    """Not an id-set object of this version (corrupt, truncated or foreign)."""


def encode(ids: Iterable[int]) -> bytes:
    """The sorted, distinct ids as delta varints."""
    out = bytearray()
    previous = 0
    for value in sorted(set(ids)):
        if value < 0:
            raise ValueError("ids are non-negative integers")
        delta = value - previous
        previous = value
        while delta >= 0x80:
            out.append((delta & 0x7F) | 0x80)
            delta >>= 7
        out.append(delta)
    return bytes(out)


def decode(blob: bytes) -> list[int]:
    """The ids of `encode`, ascending."""
    ids: list[int] = []
    value = shift = delta = 0
    for byte in blob:
        delta |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                raise Unreadable("varint too long")
            continue
        value += delta
        ids.append(value)
        delta = shift = 0
    if shift:
        raise Unreadable("truncated varint")
    return ids


def pack(sets: Mapping[str, Iterable[int]], header: dict) -> bytes:
    """One object holding every set of `sets` (resource -> ids) and `header`."""
    blobs = {name: encode(ids) for name, ids in sets.items()}
    head = {**header, "version": VERSION, "sets": {name: len(blob) for name, blob in blobs.items()}}
    return zlib.compress(json.dumps(head, separators=(",", ":")).encode() + b"\n" + b"".join(blobs.values()), LEVEL)


def unpack(data: bytes) -> tuple[dict, dict[str, list[int]]]:
    """(header, resource -> ids) of a `pack` object; Unreadable when it is not one."""
    try:
        raw = zlib.decompress(data)
        head_text, _, body = raw.partition(b"\n")
        header = json.loads(head_text)
    except (zlib.error, ValueError) as exc:
        raise Unreadable(type(exc).__name__) from None
    if not isinstance(header, dict) or header.get("version") != VERSION or not isinstance(header.get("sets"), dict):
        raise Unreadable("unknown version")
    sets, at = {}, 0
    for name, size in header["sets"].items():
        if not isinstance(size, int) or size < 0 or at + size > len(body):
            raise Unreadable("bad sizes")
        sets[name] = decode(body[at:at + size])
        at += size
    if at != len(body):
        raise Unreadable("trailing bytes")
    return header, sets
