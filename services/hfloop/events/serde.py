"""Avro wire formats: single-object encoding (default) and Confluent framing.

* Single-object (Avro spec): ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint of the
  writer schema's parsing canonical form + binary body.
* Confluent: ``00`` + 4-byte big-endian schema id + binary body; written only when a Schema
  Registry is configured, read always.

Readers resolve the writer schema (by fingerprint or id) and read into their own reader
schema (the newest version in ``schemas/``). Timestamps are ints (epoch milliseconds) in
Python: the logical types stay in the .avsc files for other readers, but this serde parses a
copy without them, which has the same canonical form and so the same fingerprint.

Encoding runs the native encoder (:mod:`hfloop.events.native`, byte-identical to fastavro)
and hands any record it declines to fastavro, which is the reference: it writes what the
native encoder does not handle (say, a numpy int) or fails, and then validation names the field.

Every decoding failure raises :class:`DecodeError` with a machine-readable ``reason``;
processors turn it into a dead letter. Encoding failures raise :class:`EncodeError` naming
the offending field.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from hfloop.events import native
from hfloop.events.schemas import SchemaSet, SchemaVersion, crc64_fingerprint, load_schemas

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SO_HEADER = 10
_CF_HEADER = 5


class DecodeError(Exception):
    """A record that cannot be decoded. ``reason`` is one of :data:`DECODE_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


DECODE_REASONS = (
    "empty", "bad_magic", "truncated", "unknown_schema", "wrong_record", "invalid_body", "trailing_bytes",
)  # fmt: skip


class EncodeError(ValueError):
    """A record that does not match its schema; ``field`` names the offending field path."""

    def __init__(self, record: str, field: str, message: str) -> None:
        super().__init__(f"{record}.{field}: {message}" if field else f"{record}: {message}")
        self.record = record
        self.field = field
        self.message = message


def _strip_logical(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical(v) for v in node]
    return node


@dataclass(frozen=True)
class Codec:
    """Parsed writer/reader schema of one record version, as this serde uses it."""

    version: SchemaVersion
    plain: Any  # parsed schema without logical types
    native: native.NativeEncoder | None = None  # None: fastavro writes every record

    @classmethod
    def of(cls, sv: SchemaVersion, *, writer: bool = False) -> Codec:
        plain = parse_schema(_strip_logical(sv.raw), _write_hint=False)
        return cls(sv, plain, native.encoder_for(plain) if writer else None)


class Registry(Protocol):
    """The part of confluent-kafka's SchemaRegistryClient this module uses."""

    def register_schema(self, subject_name: str, schema: Any) -> int: ...
    def get_schema(self, schema_id: int) -> Any: ...


def _expected(schema: Any) -> str:
    if isinstance(schema, dict) and schema.get("type") == "enum":
        return f"one of {', '.join(schema['symbols'])}"
    if isinstance(schema, dict):
        return str(schema.get("type"))
    return str(schema)


def _describe(err: ValidationError) -> tuple[str, str]:
    """(field, message) of fastavro's first validation error, in words a caller can act on."""
    datas = getattr(err, "errors", None) or []
    if not datas:
        return "", str(err).replace("\n", " ")[:300]
    first = datas[0]
    field = str(first.field or "").rsplit(".", 1)[-1]
    # A union reports one error per branch: name every branch that was tried.
    expected = " or ".join(dict.fromkeys(_expected(d.schema) for d in datas if d.field == first.field))
    return field, f"got {first.datum!r:.60} ({type(first.datum).__name__}), expected {expected}"


class Serde:
    """Encode and decode hfloop records. Thread-safe after construction (caches only grow)."""

    def __init__(self, schemas: SchemaSet | None = None, registry: Registry | None = None) -> None:
        self.schemas = schemas or load_schemas()
        self.registry = registry
        # The newest version of each record is both what we write and what we read into.
        self._readers = {
            name: Codec.of(self.schemas.latest(name), writer=True) for name in self.schemas.names()
        }
        self._by_fp = {fp: Codec.of(sv) for fp, sv in self.schemas.by_fingerprint.items()}
        self._by_id: dict[int, Codec] = {}
        self._ids: dict[str, int] = {}
        self._headers: dict[str, bytes] = {}  # record name -> framing header (fixed per serde)
        self.encoder = native.ENCODER  # "native" or "fastavro": which one writes the common case

    # --- encoding ----------------------------------------------------------------------
    def encode(self, name: str, record: dict[str, Any], *, strict: bool = False) -> bytes:
        """Encode ``record`` with the newest schema of ``name``.

        ``strict`` validates first (untrusted input: the gateway); otherwise validation runs
        only when writing fails, to name the field.
        """
        codec = self._reader(name)
        if strict:
            self._validate(codec, record)
        header = self._headers.get(name) or self._header(codec)
        if codec.native is not None:
            try:
                return codec.native.encode(header, record)
            except Exception:  # noqa: S110 - not swallowed: fastavro below writes it or names the field
                pass
        buf = io.BytesIO()
        buf.write(header)
        try:
            schemaless_writer(buf, codec.plain, record)
        except Exception as exc:
            self._validate(codec, record)
            raise EncodeError(name, "", f"{type(exc).__name__}: {exc}") from exc
        return buf.getvalue()

    def validate(self, name: str, record: dict[str, Any]) -> None:
        self._validate(self._reader(name), record)

    def _validate(self, codec: Codec, record: Any) -> None:
        name = codec.version.name
        if not isinstance(record, dict):
            raise EncodeError(name, "", f"expected an object, got {type(record).__name__}")
        for f in codec.version.raw["fields"]:
            if f["name"] not in record and "default" not in f:
                raise EncodeError(name, f["name"], "required field is missing")
        known = {f["name"] for f in codec.version.raw["fields"]}
        extra = sorted(set(record) - known)
        if extra:
            raise EncodeError(name, extra[0], "unknown field")
        try:
            validate(record, codec.plain, raise_errors=True)
        except ValidationError as exc:
            field, message = _describe(exc)
            raise EncodeError(name, field, message) from exc

    def _header(self, codec: Codec) -> bytes:
        if self.registry is None:
            header = SINGLE_OBJECT_MAGIC + codec.version.fingerprint
        else:
            header = CONFLUENT_MAGIC + struct.pack(">I", self._schema_id(codec))
        self._headers[codec.version.name] = header
        return header

    def _schema_id(self, codec: Codec) -> int:
        key = codec.version.full_name
        sid = self._ids.get(key)
        if sid is None:
            from confluent_kafka.schema_registry import Schema

            assert self.registry is not None
            sid = self.registry.register_schema(key, Schema(json.dumps(codec.version.raw), "AVRO"))
            self._ids[key] = sid
            self._by_id[sid] = codec
        return sid

    # --- decoding ----------------------------------------------------------------------
    def decode(self, data: bytes | None, expected: str | None = None) -> tuple[str, dict[str, Any]]:
        """Decode either framing into the newest schema of its record; returns (name, record)."""
        writer, body_at = self._writer_of(data)
        name = writer.version.name
        if expected is not None and name != expected:
            raise DecodeError("wrong_record", f"expected {expected}, got {name}")
        reader = self._readers[name]
        assert data is not None
        buf = io.BytesIO(data)
        buf.seek(body_at)
        try:
            if reader is writer or reader.version.fingerprint == writer.version.fingerprint:
                record = schemaless_reader(buf, writer.plain, None)
            else:
                record = schemaless_reader(buf, writer.plain, reader.plain)
        except EOFError as exc:
            raise DecodeError("truncated", f"{name} body ends early") from exc
        except Exception as exc:
            raise DecodeError("invalid_body", f"{name}: {type(exc).__name__}: {exc}"[:300]) from exc
        if buf.tell() != len(data):
            raise DecodeError("trailing_bytes", f"{name}: {len(data) - buf.tell()} bytes after the record")
        return name, record  # type: ignore[return-value]

    def decode_as(self, data: bytes | None, name: str) -> dict[str, Any]:
        return self.decode(data, expected=name)[1]

    def _writer_of(self, data: bytes | None) -> tuple[Codec, int]:
        if not data:
            raise DecodeError("empty", "no bytes")
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < _SO_HEADER:
                raise DecodeError("truncated", f"single-object header needs 10 bytes, got {len(data)}")
            fp = bytes(data[2:_SO_HEADER])
            codec = self._by_fp.get(fp)
            if codec is None:
                raise DecodeError("unknown_schema", f"no schema with fingerprint {fp.hex()}")
            return codec, _SO_HEADER
        if data[:1] == CONFLUENT_MAGIC:
            if len(data) < _CF_HEADER:
                raise DecodeError("truncated", f"Confluent header needs 5 bytes, got {len(data)}")
            (sid,) = struct.unpack(">I", data[1:_CF_HEADER])
            return self._codec_by_id(sid), _CF_HEADER
        raise DecodeError("bad_magic", f"first bytes {bytes(data[:2]).hex()} are neither C301 nor 00")

    def _codec_by_id(self, sid: int) -> Codec:
        codec = self._by_id.get(sid)
        if codec is not None:
            return codec
        if self.registry is None:
            raise DecodeError("unknown_schema", f"schema id {sid} but no schema registry is configured")
        try:
            schema = self.registry.get_schema(sid)
        except Exception as exc:
            raise DecodeError("unknown_schema", f"schema id {sid}: {exc}") from exc
        raw = json.loads(schema.schema_str)
        from fastavro.schema import to_parsing_canonical_form

        fp = crc64_fingerprint(to_parsing_canonical_form(raw))
        codec = self._by_fp.get(fp)
        if codec is None:
            # A writer version we do not ship: still readable into our reader schema.
            name = raw.get("name", "")
            if name not in self._readers:
                raise DecodeError(
                    "unknown_schema", f"schema id {sid} is record {name!r}, not an hfloop record"
                )
            sv = SchemaVersion(name, -sid, raw, None, "", fp)
            codec = Codec.of(sv)
        self._by_id[sid] = codec
        return codec

    def _reader(self, name: str) -> Codec:
        try:
            return self._readers[name]
        except KeyError:
            raise EncodeError(name, "", f"no such record; known: {sorted(self._readers)}") from None


_default: Serde | None = None


def default_serde() -> Serde:
    """Process-wide serde built from settings (registry when HFLOOP_SCHEMA_REGISTRY_URL is set)."""
    global _default
    if _default is None:
        from hfloop.config import get_settings

        url = get_settings().schema_registry_url
        registry = None
        if url:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            registry = SchemaRegistryClient.new_client({"url": url})
        _default = Serde(registry=registry)
    return _default
