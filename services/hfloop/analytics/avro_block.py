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

ClickHouse's reader is more lenient than the serde: it ignores bytes after a block's record and
does not check UTF-8, and it stores timestamps outside 1970..9999 clamped (which later breaks
reads through clickhouse_connect). So before a container is framed, every body goes through the
native skip-validator (:func:`validator_of`, ~0.1-0.3 us per record, no objects built), which
accepts exactly what :meth:`Serde.decode` accepts and refuses timestamps outside that range.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from hfloop.events import native
from hfloop.events.schemas import EVENT_TIME_MAX_MS, SchemaVersion, event_time_problem
from hfloop.events.serde import Codec

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
    parts: list[bytes | memoryview] = [container_header(schema, sync)]
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


# --- what a container may hold ---------------------------------------------------------------
# Every timestamp-millis value must lie in 1970..9999 (hfloop.events.schemas): DateTime64 and
# Python's datetime hold it; outside it clickhouse_connect fails to read the row back.
RANGES = {"timestamp-millis": (0, EVENT_TIME_MAX_MS)}
_validators: dict[tuple[int, int], tuple[SchemaVersion, SchemaVersion, native.NativeValidator | None]] = {}


def validator_of(writer: SchemaVersion, reader: SchemaVersion) -> native.NativeValidator | None:
    """The skip-validator for bodies ``writer`` wrote, read as ``reader`` (the newest version).

    None where it could not agree with :meth:`Serde.decode` byte for byte, and the caller decodes
    instead: the extension is not built, or resolving writer to reader would skip or convert a
    field (the validator walks the writer schema; fastavro then skips without checking, or fails
    on a reader field without default). Built once per schema pair; a handful per flush.
    """
    key = (id(writer), id(reader))
    cached = _validators.get(key)
    if cached is not None and cached[0] is writer and cached[1] is reader:
        return cached[2]
    validator = native.validator_for(writer.parsed, RANGES) if reads_every_field(writer, reader) else None
    _validators[key] = (writer, reader, validator)  # the versions stay referenced: ids stay unique
    return validator


def reads_every_field(writer: SchemaVersion, reader: SchemaVersion) -> bool:
    """Whether reading ``writer``'s bodies as ``reader`` reads every writer field as written: the
    same record, and the reader only adds fields with defaults (Interaction v1 -> v2)."""
    if writer.fingerprint == reader.fingerprint:
        return True
    w, r = writer.raw, reader.raw
    if w.get("type") != "record" or r.get("type") != "record" or writer.full_name != reader.full_name:
        return False
    theirs = {f["name"]: f for f in r["fields"]}
    ours = {f["name"] for f in w["fields"]}
    same = all(
        f["name"] in theirs and _type_json(theirs[f["name"]]["type"]) == _type_json(f["type"])
        for f in w["fields"]
    )
    return same and all("default" in f for name, f in theirs.items() if name not in ours)


# --- what ClickHouse refuses that the serde reads -------------------------------------------
_plain: dict[bytes, Any] = {}  # writer fingerprint -> parsed schema without logical types


def is_canonical(schema: SchemaVersion, body: bytes | memoryview) -> bool:
    """Whether ``body`` is exactly the bytes Avro writes for the record it holds (False also when
    fastavro cannot read it whole).

    fastavro reads, and the serde and the validator therefore accept, encodings no writer
    produces: a varint padded past 10 bytes, a boolean byte other than 0/1, an enum or union
    index counted from the end. ClickHouse's reader (avro-cpp) refuses some of them. So when
    ClickHouse refuses a record alone, a non-canonical body says the bytes are at fault, not the
    table. Called only for such records (a decode and an encode, ~20 us): never per record.
    """
    plain = _plain.get(schema.fingerprint)
    if plain is None:
        plain = _plain[schema.fingerprint] = Codec.of(schema).plain
    buf = io.BytesIO(body)
    try:
        record = schemaless_reader(buf, plain, None)
    except Exception:  # any reader failure: not a record as Avro writes it
        return False
    if buf.tell() != len(body):
        return False
    out = io.BytesIO()
    schemaless_writer(out, plain, record)  # type: ignore[arg-type]
    return out.getvalue() == bytes(body)


def _type_json(t: Any) -> str:
    return json.dumps(t, sort_keys=True)


def timestamp_problem(sv: SchemaVersion, record: dict[str, Any]) -> str | None:
    """``<Record>.<field> <why>`` for the first timestamp-millis value of a decoded ``record`` (read
    as ``sv``) outside 1970..9999; None when every one is fine. The dead letter's message: only
    called for a record the validator refused and the serde decoded."""
    named: dict[str, Any] = {}

    def walk(schema: Any, value: Any, path: str) -> str | None:
        if isinstance(schema, str):
            schema = named.get(schema, schema)
        if isinstance(schema, list):
            for branch in schema:
                if (found := walk(branch, value, path)) is not None:
                    return found
            return None
        if not isinstance(schema, dict):
            return None
        kind = schema.get("type")
        if isinstance(kind, dict | list):
            return walk(kind, value, path)
        if kind in ("record", "enum", "fixed") and "name" in schema:
            named[schema["name"]] = named[f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")] = (
                schema
            )
        if schema.get("logicalType") == "timestamp-millis" and type(value) is int:
            problem = event_time_problem(value)
            return f"{path} {problem}" if problem else None
        if kind == "record" and isinstance(value, dict):
            for f in schema["fields"]:
                if (found := walk(f["type"], value.get(f["name"]), f"{path}.{f['name']}")) is not None:
                    return found
        elif kind == "array" and isinstance(value, list):
            for i, item in enumerate(value):
                if (found := walk(schema["items"], item, f"{path}[{i}]")) is not None:
                    return found
        elif kind == "map" and isinstance(value, dict):
            for k, item in value.items():
                if (found := walk(schema["values"], item, f"{path}[{k!r}]")) is not None:
                    return found
        return None

    return walk(sv.raw, record, sv.name)
