"""Serde: spec fingerprints, both framings, schema evolution, and typed decode errors."""

from __future__ import annotations

import contextlib
import struct

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import given, settings
from hypothesis import strategies as st
from records import examples

from hfloop.events.schemas import crc64_fingerprint, load_schemas
from hfloop.events.serde import DecodeError, EncodeError, Serde

SERDE = Serde()


def test_crc64_avro_matches_the_spec_value_for_null():
    # Avro spec test vector: fingerprint64 of the canonical form "null" = 7195948357588979594.
    assert struct.unpack("<q", crc64_fingerprint('"null"'))[0] == 7195948357588979594


@pytest.mark.parametrize("name", sorted(examples()))
def test_single_object_round_trip(name):
    rec = examples()[name]
    data = SERDE.encode(name, rec, strict=True)
    sv = load_schemas().latest(name)
    assert data[:2] == b"\xc3\x01" and data[2:10] == sv.fingerprint
    got_name, got = SERDE.decode(data)
    assert got_name == name
    assert got == rec


@pytest.mark.parametrize("name", sorted(examples()))
def test_confluent_framing_round_trip_and_both_framings_read(name):
    # Schema Registry: confluent-kafka's in-memory MockSchemaRegistryClient ("mock://"), because no
    # Confluent Schema Registry server can run on this machine (not on Maven Central / PyPI).
    registry = SchemaRegistryClient.new_client({"url": "mock://hfloop-test"})
    writer = Serde(registry=registry)
    reader = Serde(registry=registry)
    rec = examples()[name]
    data = writer.encode(name, rec)
    assert data[0] == 0 and len(data) > 5
    assert reader.decode(data) == (name, rec)
    # a registry-configured reader still reads single-object records
    assert reader.decode(SERDE.encode(name, rec)) == (name, rec)


def test_v1_writer_read_by_v2_reader():
    schemas = load_schemas()
    v1 = schemas.get("Interaction", 1)
    rec = examples()["Interaction"]
    v1_rec = {k: v for k, v in rec.items() if k not in ("trace_id", "parent_interaction_id")}
    import io

    from fastavro import schemaless_writer

    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + v1.fingerprint)
    schemaless_writer(buf, SERDE._by_fp[v1.fingerprint].plain, v1_rec)
    name, got = SERDE.decode(buf.getvalue())
    assert name == "Interaction"
    assert got["trace_id"] is None and got["parent_interaction_id"] is None  # v2 defaults
    assert {k: got[k] for k in v1_rec} == v1_rec


def test_decode_errors_are_typed():
    good = SERDE.encode("Outcome", examples()["Outcome"])
    cases = {
        b"": "empty",
        b"\x07\x01abc": "bad_magic",
        b"\xc3\x01\x00\x01": "truncated",
        b"\xc3\x01" + b"\x00" * 8 + b"x": "unknown_schema",
        good[:-3]: "truncated",
        good + b"\x00\x00": "trailing_bytes",
        b"\x00\x00\x00\x00\x07abc": "unknown_schema",  # Confluent id without a registry
    }
    for data, reason in cases.items():
        with pytest.raises(DecodeError) as err:
            SERDE.decode(data)
        assert err.value.reason == reason, (data, err.value)


def test_wrong_record_is_reported():
    with pytest.raises(DecodeError) as err:
        SERDE.decode(SERDE.encode("Outcome", examples()["Outcome"]), expected="Feedback")
    assert err.value.reason == "wrong_record"


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("agent_id"), "agent_id"),
        (lambda r: r.update(latency_ms="slow"), "latency_ms"),
        (lambda r: r.update(messages=[{"role": "user"}]), "content"),
        (lambda r: r.update(surprise=1), "surprise"),
        (lambda r: r.update(prompt_tokens=2**40), "prompt_tokens"),
    ],
)
def test_encode_error_names_the_field(mutate, field):
    rec = examples()["Interaction"]
    mutate(rec)
    with pytest.raises(EncodeError) as err:
        SERDE.encode("Interaction", rec, strict=True)
    assert field in str(err.value)


def test_non_strict_encode_still_names_the_field_on_failure():
    rec = examples()["Interaction"]
    rec["response"] = 42
    with pytest.raises(EncodeError) as err:
        SERDE.encode("Interaction", rec)
    assert "response" in str(err.value)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_decode_error(data):
    with contextlib.suppress(DecodeError):
        SERDE.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_records_never_crash_the_decoder(data):
    name = data.draw(st.sampled_from(sorted(examples())))
    blob = bytearray(SERDE.encode(name, examples()[name]))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    with contextlib.suppress(DecodeError):
        SERDE.decode(bytes(blob[:cut]))
