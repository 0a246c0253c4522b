"""Kafka values -> Avro object-container bytes ClickHouse reads with ``FORMAT Avro``.

Why: decoding every record in Python (fastavro) costs ~15 us, which caps one core at well under
the sink's 100k rows/s target. Our wire format (single-object encoding) is the writer schema's
fingerprint followed by the plain Avro binary body, which is exactly what an Avro object
container file holds after its header. So the sink resolves each value's writer schema through
the serde's schema set (by fingerprint), and concatenates the untouched bodies under that
schema; ClickHouse decodes them in C++ and maps fields to columns by name. A v1 writer next to
a v2 one simply becomes two containers.

Each record gets its own container block (count 1, byte size, sync marker): a body whose length
does not match its schema then fails the block instead of shifting every following record, and
the sink falls back to :meth:`Serde.decode` per record to find the culprit (see ``sink.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from hfloop.events.schemas import SchemaVersion

MAGIC = b"Obj\x01"


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(b: bytes) -> bytes:
    return _zigzag(len(b)) + b


# Varints of small block sizes, precomputed: this is the sink's inner loop.
_VARINTS = [_zigzag(i) for i in range(1 << 14)]
_ONE = _zigzag(1)


def container_header(schema: SchemaVersion, sync: bytes) -> bytes:
    meta = (
        _zigzag(2)
        + _string(b"avro.schema")
        + _string(json.dumps(schema.raw).encode())
        + _string(b"avro.codec")
        + _string(b"null")
        + _zigzag(0)
    )
    return MAGIC + meta + sync


@dataclass
class Container:
    """Bodies of one writer schema, framed one record per block."""

    schema: SchemaVersion
    sync: bytes = field(default_factory=lambda: os.urandom(16))
    parts: list[bytes] = field(default_factory=list)
    count: int = 0

    def add(self, body: bytes | memoryview) -> None:
        n = len(body)
        self.parts.append(_ONE + (_VARINTS[n] if n < len(_VARINTS) else _zigzag(n)))
        self.parts.append(body)  # type: ignore[arg-type]
        self.parts.append(self.sync)
        self.count += 1

    def to_bytes(self) -> bytes:
        return container_header(self.schema, self.sync) + b"".join(self.parts)


# count 1 + size, for every body size a block prefix may need without computing it per record.
_PREFIXES = [_ONE + v for v in _VARINTS]


def container_of_framed(schema: SchemaVersion, values: Iterable[bytes], header: int) -> bytes:
    """A container of single-object-encoded values of ``schema``: each value's first ``header``
    bytes (magic + fingerprint) dropped, the body framed as its own block.

    The sink's per-record cost is this loop (one slice, two appends): it runs once per flush, over
    the values as they came from Kafka, instead of copying them into a buffer as they arrive.
    """
    sync = os.urandom(16)
    parts = [container_header(schema, sync)]
    append = parts.append
    prefixes, limit = _PREFIXES, len(_PREFIXES)
    for v in values:
        n = len(v) - header
        append(prefixes[n] if n < limit else _ONE + _zigzag(n))
        append(memoryview(v)[header:])
        append(sync)
    return b"".join(parts)


def container_of(schema: SchemaVersion, bodies: Iterable[bytes]) -> bytes:
    c = Container(schema)
    for b in bodies:
        c.add(b)
    return c.to_bytes()
