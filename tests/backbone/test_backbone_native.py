"""The native Avro encoder writes exactly fastavro's bytes, and declines whatever it cannot.

Property: for random valid records of every schema in schemas/ (and of a synthetic schema with
the Avro types ours do not use), native bytes == fastavro bytes. For random *invalid* values
dropped into valid records, the native encoder either declines or writes fastavro's bytes;
through the serde, a record fastavro cannot write raises EncodeError naming the field.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from records import examples

from avro_values import Draw, named_types, values
from hfloop.events import native
from hfloop.events.native.program import NotCompilable, compile_schema
from hfloop.events.schemas import load_schemas
from hfloop.events.serde import Codec, EncodeError, Serde

SERDE = Serde()

# Every Avro type, the union shapes fastavro resolves by value, a recursive record.
SYNTHETIC = parse_schema({
    "type": "record", "name": "t.All", "fields": [
        {"name": "f", "type": "float"}, {"name": "d", "type": "double"}, {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"}, {"name": "l", "type": "long"}, {"name": "by", "type": "bytes"},
        {"name": "fx", "type": {"type": "fixed", "name": "t.F4", "size": 4}},
        {"name": "e", "type": {"type": "enum", "name": "t.E", "symbols": ["A", "B", "C"]}},
        {"name": "num", "type": ["null", "int", "float", "double"]},
        {"name": "fl", "type": ["float", "string", "t.E"]},
        {"name": "sb", "type": ["string", "bytes", "t.F4", "boolean", "long"]},
        {"name": "recs", "type": {"type": "map", "values": ["null", {"type": "record", "name": "t.Node", "fields": [
            {"name": "v", "type": "long"},
            {"name": "kids", "type": {"type": "array", "items": "t.Node"}},
            {"name": "tag", "type": ["null", "string"], "default": None},
        ]}]}},
        {"name": "arr", "type": ["null", {"type": "array", "items": "double"}]},
        {"name": "m", "type": ["null", {"type": "map", "values": "t.E"}], "default": None},
        {"name": "dflt", "type": "string", "default": "x"},
    ],
}, _write_hint=False)  # fmt: skip


def fastavro_bytes(schema: Any, datum: Any) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, datum)
    return buf.getvalue()


def writer_schemas() -> list[tuple[str, Any]]:
    out = [(f"{sv.name}.v{sv.version}", Codec.of(sv).plain) for sv in load_schemas().by_fingerprint.values()]
    # The raw schemas too: their timestamp-millis longs take ints unchanged.
    out += [(f"{sv.name}.v{sv.version}+logical", sv.parsed) for sv in load_schemas().by_fingerprint.values()]
    return [*out, ("synthetic", SYNTHETIC)]


SCHEMAS = writer_schemas()
DRAW = Draw(text_size=12, loose_numbers=True, optional_defaults=True)
EVERY_SCHEMA = pytest.mark.parametrize("label, schema", SCHEMAS, ids=[s[0] for s in SCHEMAS])
PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def test_native_encoder_is_built_and_active():
    # make install compiles it (hatch_build.py); a stale or missing build fails here, not silently.
    assert native.ACTIVE, native.WHY_INACTIVE
    assert SERDE.encoder == "native"
    assert all(codec.native is not None for codec in SERDE._readers.values())


@EVERY_SCHEMA
@PROPERTY
@given(data=st.data())
def test_native_bytes_equal_fastavro_bytes(label, schema, data):
    enc = native.encoder_for(schema)
    assert enc is not None, label
    rec = data.draw(values(schema, named_types(schema), DRAW))
    assert enc.encode(b"", rec) == fastavro_bytes(schema, rec)


JUNK = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4) | st.binary(max_size=4)
        | st.just([]) | st.just({}) | st.just((1, 2)) | st.just({"-type": "x"}) | st.just(("t.Node", {"v": 1, "kids": []}))
        | st.just(float("nan")) | st.just(2**63) | st.just("\ud800") | st.just(bytearray(b"ab")))  # fmt: skip


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@EVERY_SCHEMA
@PROPERTY
@given(data=st.data())
def test_native_declines_or_agrees_on_wrong_values(label, schema, data):
    """A wrong value anywhere (or a dropped key): native output, if any, is fastavro's output."""
    enc = native.encoder_for(schema)
    rec = data.draw(values(schema, named_types(schema), DRAW))
    path = data.draw(st.sampled_from(_paths(rec)))
    if path and data.draw(st.booleans()) and isinstance(rec, dict):
        bad = _replace(rec, path[:-1], {k: v for k, v in _get(rec, path[:-1]).items() if k != path[-1]}) \
            if isinstance(_get(rec, path[:-1]), dict) else rec  # fmt: skip
    else:
        bad = _replace(rec, path, data.draw(JUNK))
    try:
        expected: bytes | None = fastavro_bytes(schema, bad)
    except Exception:
        expected = None
    try:
        got: bytes | None = enc.encode(b"", bad)
    except Exception:
        got = None
    if got is not None:
        assert got == expected, (path, bad)


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


@pytest.mark.parametrize("name", sorted(examples()))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_serde_encode_matches_fastavro_or_names_the_field(name, data):
    """Through Serde.encode: fastavro's bytes whenever fastavro writes it, else EncodeError."""
    rec = examples()[name]
    path = data.draw(st.sampled_from([p for p in _paths(rec) if p]))
    bad = _replace(rec, path, data.draw(JUNK))
    codec = SERDE._readers[name]
    try:
        expected: bytes | None = SERDE._header(codec) + fastavro_bytes(codec.plain, bad)
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(EncodeError) as err:
            SERDE.encode(name, bad)
        assert err.value.record == name
    else:
        assert SERDE.encode(name, bad) == expected


def test_native_declines_values_fastavro_resolves_by_its_own_rules():
    enc = native.encoder_for(SYNTHETIC)
    assert enc is not None
    with pytest.raises(native.Unsupported):
        enc.encode(b"", {"x": 1})  # missing fields without defaults: fastavro's error, not ours
    node = {"type": "record", "name": "R", "fields": [{"name": "u", "type": ["null", "int", "long"]}]}
    small = native.encoder_for(parse_schema(node, _write_hint=False))
    assert small is not None
    assert small.encode(b"P", {"u": 5}) == b"P" + fastavro_bytes(
        parse_schema(node, _write_hint=False), {"u": 5}
    )
    for declined in (True, 2**63, (1, 2), 1.5):  # bool/float/huge/tuple: fastavro decides
        with pytest.raises(Exception):  # noqa: B017 - any refusal is fine, the serde falls back
            small.encode(b"", {"u": declined})


def test_unsupported_logical_types_are_not_compiled():
    decimal = parse_schema({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2})
    with pytest.raises(NotCompilable):
        compile_schema(decimal)
    assert native.encoder_for(decimal) is None


def test_nan_and_negative_zero_are_bit_exact():
    enc = native.encoder_for(SYNTHETIC)
    assert enc is not None
    rec = {"f": -0.0, "d": math.nan, "b": True, "i": 0, "l": 0, "by": b"", "fx": b"abcd", "e": "C", "num": -0.0,
           "fl": 3, "sb": b"abcd", "recs": {"k": {"v": 1, "kids": [{"v": 2, "kids": []}]}}, "arr": [math.inf]}  # fmt: skip
    assert enc.encode(b"", rec) == fastavro_bytes(SYNTHETIC, rec)
