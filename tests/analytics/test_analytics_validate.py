"""The sink's native skip-validator accepts a body exactly when ``Serde.decode`` decodes it.

The sink hands Avro bodies to ClickHouse undecoded, and ClickHouse stores some the serde refuses
(trailing bytes, invalid UTF-8) and timestamps outside 1970..9999. So every body goes through
``hfloop.events.native`` Validator first. Properties, for every schema version in ``schemas/`` and
a synthetic schema with the Avro types ours do not use:

* a valid record is accepted and consumed to its last byte;
* a mutated body (truncated, bytes appended, inserted or overwritten, invalid UTF-8 written into
  a string) is refused if and only if the serde (fastavro's reader) refuses it;
* compiled with the timestamp range, it also refuses exactly the records the serde decodes whose
  timestamp-millis values lie outside 1970..9999.

Then the sink itself: such records are dead-lettered with the serde's reason (``invalid``, naming
the field, for timestamps) and the rest is stored and reads back.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from avro_values import Draw, named_types, values
from hfloop.analytics import avro_block
from hfloop.analytics.avro_block import RANGES, reads_every_field, timestamp_problem, validator_of
from hfloop.analytics.batch import Batch
from hfloop.analytics.sink import ClickHouseWriter
from hfloop.events import native
from hfloop.events.schemas import EVENT_TIME_MAX_MS, SchemaVersion, load_schemas
from hfloop.events.serde import Codec, DecodeError, Serde, _strip_logical
from hfloop.sdk import events as ev

SERDE = Serde()
SCHEMAS = load_schemas()
VERSIONS = sorted(SCHEMAS.by_fingerprint.values(), key=lambda sv: (sv.name, sv.version))

# Every Avro type, unions with many branches (negative indexes are Python list indexes to
# fastavro), a recursive record.
SYNTHETIC_RAW: dict[str, Any] = {
    "type": "record", "name": "v.All", "fields": [
        {"name": "f", "type": "float"}, {"name": "d", "type": "double"}, {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"}, {"name": "by", "type": "bytes"},
        {"name": "fx", "type": {"type": "fixed", "name": "v.F3", "size": 3}},
        {"name": "e", "type": {"type": "enum", "name": "v.E", "symbols": ["A", "B", "C"]}},
        {"name": "u", "type": ["null", "int", "string", "v.E", "v.F3", "boolean"]},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tree", "type": {"type": "map", "values": ["null", {"type": "record", "name": "v.Node", "fields": [
            {"name": "v", "type": "long"},
            {"name": "kids", "type": {"type": "array", "items": "v.Node"}},
            {"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
        ]}]}},
        {"name": "nulls", "type": {"type": "array", "items": "null"}},
    ],
}  # fmt: skip
SYNTHETIC = parse_schema(SYNTHETIC_RAW, _write_hint=False)
# What the serde reads with: no logical types, timestamps stay ints (see hfloop.events.serde).
SYNTHETIC_PLAIN = parse_schema(_strip_logical(SYNTHETIC_RAW), _write_hint=False)


# Timestamps: mostly plausible, often just outside the accepted range, sometimes anything.
TIMES = st.one_of(
    st.integers(0, EVENT_TIME_MAX_MS),
    st.sampled_from([-1, 0, EVENT_TIME_MAX_MS, EVENT_TIME_MAX_MS + 1, -(2**63), 2**63 - 1]),
    st.integers(-(2**63), 2**63 - 1),
)
DRAW = Draw(text_size=10, timestamps=TIMES)


def written(sv: SchemaVersion | None) -> Any:
    """The schema values are drawn for and written with: with its logical types, so timestamps are
    drawn around the accepted range (fastavro writes an int timestamp unchanged)."""
    return sv.parsed if sv is not None else SYNTHETIC


def draw_body(data: st.DataObject, sv: SchemaVersion | None) -> bytes:
    schema = written(sv)
    return avro(schema, data.draw(values(schema, named_types(schema), DRAW)))


def avro(schema: Any, datum: Any) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, schema, datum)
    return buf.getvalue()


# Bytes that break things: continuation bytes, overlong leads, surrogate and >U+10FFFF leads,
# varint continuations, negative zig-zag values.
NASTY = st.sampled_from(
    [0x80, 0xBF, 0xC0, 0xC1, 0xC3, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF, 0x01, 0x03, 0x7F, 0x00]
)
BYTE = st.integers(0, 255) | NASTY


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """One or two of: truncate, append, insert, overwrite, invalid UTF-8 in place."""
    out = bytearray(body)
    for _ in range(draw(st.integers(1, 2))):
        op = draw(st.sampled_from(["truncate", "append", "insert", "overwrite", "overwrite", "utf8"]))
        at = draw(st.integers(0, len(out)))
        if op == "truncate":
            del out[at:]
        elif op == "append":
            out += bytes(draw(st.lists(BYTE, min_size=1, max_size=4)))
        elif op == "insert":
            out[at:at] = bytes(draw(st.lists(BYTE, min_size=1, max_size=3)))
        elif out:
            at = min(at, len(out) - 1)
            junk = [draw(BYTE)] if op == "overwrite" else draw(st.sampled_from([[0xFF], [0xC3, 0x28], [0xED, 0xA0, 0x80],
                                                                                [0xF4, 0x90, 0x80, 0x80], [0xC0, 0x80]]))  # fmt: skip
            out[at : at + len(junk)] = bytes(junk)
    return bytes(out)


def serde_reads(sv: SchemaVersion | None, schema: Any, body: bytes) -> dict[str, Any] | None:
    """What the serde makes of a body: the record, or None when it refuses it. For our schemas
    ``Serde.decode`` itself; for the synthetic one the same reader call and trailing-bytes check."""
    if sv is not None:
        try:
            return SERDE.decode(b"\xc3\x01" + sv.fingerprint + body, expected=sv.name)[1]
        except DecodeError:
            return None
    buf = io.BytesIO(body)
    try:
        record = schemaless_reader(buf, schema, None)
    except Exception:
        return None
    return record if buf.tell() == len(body) else None  # type: ignore[return-value]


CASES = [(f"{sv.name}.v{sv.version}", sv, Codec.of(sv).plain) for sv in VERSIONS] + [
    ("synthetic", None, SYNTHETIC_PLAIN)
]
EVERY_SCHEMA = pytest.mark.parametrize("label, sv, schema", CASES, ids=[c[0] for c in CASES])
PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def checker(sv: SchemaVersion | None, ranges: bool) -> native.NativeValidator:
    parsed = sv.parsed if sv is not None else SYNTHETIC
    v = native.validator_for(parsed, RANGES if ranges else None)
    assert v is not None
    return v


def test_every_schema_version_gets_a_native_validator() -> None:
    assert native.ACTIVE, native.WHY_INACTIVE
    for sv in VERSIONS:
        latest = SCHEMAS.latest(sv.name)
        assert reads_every_field(sv, latest), f"{sv.name}.v{sv.version} would fall back to decoding"
        assert validator_of(sv, latest) is not None


@EVERY_SCHEMA
@PROPERTY
@given(data=st.data())
def test_valid_records_are_accepted_to_the_last_byte(label: str, sv: SchemaVersion | None, schema: Any,
                                                     data: st.DataObject) -> None:  # fmt: skip
    body = draw_body(data, sv)
    assert checker(sv, ranges=False).end(body) == len(body)
    assert checker(sv, ranges=False).rejects([b"pre" + body], 3) == []


@EVERY_SCHEMA
@PROPERTY
@given(data=st.data())
def test_a_mutated_body_is_refused_iff_the_serde_refuses_it(label: str, sv: SchemaVersion | None, schema: Any,
                                                            data: st.DataObject) -> None:  # fmt: skip
    body = data.draw(mutated(draw_body(data, sv)))
    serde_ok = serde_reads(sv, schema, body) is not None
    assert (checker(sv, ranges=False).end(body) == len(body)) == serde_ok, body.hex()


def _times_ok(sv: SchemaVersion | None, record: dict[str, Any]) -> bool:
    if sv is not None:
        return timestamp_problem(SCHEMAS.latest(sv.name), record) is None
    fake = SchemaVersion("All", 1, SYNTHETIC_RAW, SYNTHETIC, "", b"")
    return timestamp_problem(fake, record) is None


@EVERY_SCHEMA
@PROPERTY
@given(data=st.data(), mutate=st.booleans())
def test_with_the_range_it_also_refuses_exactly_the_out_of_range_timestamps(
    label: str, sv: SchemaVersion | None, schema: Any, data: st.DataObject, mutate: bool
) -> None:
    body = draw_body(data, sv)
    if mutate:
        body = data.draw(mutated(body))
    record = serde_reads(sv, schema, body)
    want = record is not None and _times_ok(sv, record)
    assert (checker(sv, ranges=True).end(body) == len(body)) == want, body.hex()


# fastavro's reader quirks, each next to what it does: the validator must do the same.
QUIRKS = [
    ("boolean", b"\x02"),  # any byte is a boolean
    ("boolean", b""),
    ("int", b"\xff\xff\xff\xff\xff\xff\x01"),  # an int beyond 32 bits
    ("long", b"\x80" * 12 + b"\x01"),  # an 13-byte varint: bits past 64 wrap around
    ("long", b"\xff" * 12 + b"\x01"),
    ("long", b"\x80"),  # ends inside a varint
    ("long", b""),
    ("string", b"\x0aab"),  # shorter than its length
    ("string", b"\x03abc"),  # negative length
    ("string", b"\x01"),
    ("string", b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"),  # 2^62 bytes
    ("string", b"\x06\xed\xa0\x80"),  # a surrogate
    ("string", b"\x04\xc0\x80"),  # an overlong NUL
    ("string", b"\x08\xf4\x90\x80\x80"),  # beyond U+10FFFF
    ("string", b"\x08\xf0\x9f\x98\x80"),  # U+1F600
    ("bytes", b"\x04\xff\xfe"),  # bytes are not text
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, b"\x01"),  # index -1: the last symbol
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, b"\x03"),  # index -2
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, b"\x05"),  # index -3
    ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, b"\x04"),  # index 2
    (["null", "string"], b"\x01\x02a"),  # union index -1
    (["null", "string"], b"\x04"),
    ({"type": "array", "items": "long"}, b"\x03\x04\x02\x04\x00"),  # a block with a negative count and a size
    ({"type": "array", "items": "long"}, b"\x01\x00"),  # count -1, size 0, then no item
    ({"type": "array", "items": "long"}, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00"),  # count -2^63
    ({"type": "map", "values": "null"}, b"\x02\x02a\x00"),
    ({"type": "map", "values": "null"}, b"\x02\x02\xff\x00"),  # a key that is not UTF-8
    ({"type": "fixed", "name": "F", "size": 4}, b"ab"),
    ("float", b"\x00\x00\x00"),
    ("double", b"\x00" * 8),
]


@pytest.mark.parametrize(
    "schema, body", QUIRKS, ids=[f"{i}-{b.hex()[:16]}" for i, (_, b) in enumerate(QUIRKS)]
)
def test_fastavro_quirks_are_mirrored(schema: Any, body: bytes) -> None:
    parsed = parse_schema(schema, _write_hint=False)
    v = native.validator_for(parsed)
    assert v is not None
    assert (v.end(body) == len(body)) == (serde_reads(None, parsed, body) is not None)


@example(offset=0)
@given(offset=st.integers(-3, 80))
@settings(max_examples=30, deadline=None)
def test_rejects_takes_any_offset_and_junk_without_crashing(offset: int) -> None:
    sv = SCHEMAS.latest("Outcome")
    v = validator_of(sv, sv)
    assert v is not None
    good = SERDE.encode("Outcome", ev.outcome(tenant_id="t", interaction_id="i", kind="ACCEPTED"))
    values: list[Any] = [good, None, b"", bytearray(good), memoryview(good), 7, "text"]
    got = v.rejects(values, offset)
    assert set(got) >= {1, 2, 5, 6}, "None, empty and non-bytes are refused"
    assert {0, 3, 4} & set(got) in (set(), {0, 3, 4}), "every bytes-like type reads the same"
    if offset == 10:
        assert not {0, 3, 4} & set(got)


# --- the sink --------------------------------------------------------------------------------
T0 = 1_700_000_000_000


def _bad_inputs() -> list[tuple[str, bytes, str, str]]:
    """(topic, value, expected reason, text the message must contain)."""
    out = []
    o = SERDE.encode(
        "Outcome", ev.outcome(tenant_id="t", interaction_id="x1", kind="ACCEPTED", event_time=T0)
    )
    out.append(("hfloop.outcomes", o + b"\x00", "trailing_bytes", "1 bytes after the record"))
    fb = ev.feedback(tenant_id="t", interaction_id="x2", kind="CORRECTION", annotator_id="u", correction="\u2603MARK",
                     event_time=T0)  # fmt: skip
    utf8 = SERDE.encode("Feedback", fb).replace("\u2603MARK".encode(), b"\xff\xfe\xc3\x28\xa0\xa1\x80")
    out.append(("hfloop.feedback", utf8, "invalid_body", "UnicodeDecodeError"))
    for t, why in (
        (-1, "before 1970"),
        (-(10**12), "before 1970"),
        (EVENT_TIME_MAX_MS + 1, "after 9999-12-31"),
    ):
        rec = ev.outcome(tenant_id="t", interaction_id=f"x{t}", kind="ACCEPTED", event_time=t)
        out.append(
            ("hfloop.outcomes", SERDE.encode("Outcome", rec), "invalid", f"Outcome.event_time {t} is {why}")
        )
    run = _training_run(window_end=EVENT_TIME_MAX_MS + 5)
    out.append(("hfloop.training", SERDE.encode("TrainingRun", run), "invalid", "TrainingRun.window_end"))
    # Out of range and trailing bytes: the serde's reason wins (what Serde.decode says).
    late = SERDE.encode(
        "Outcome", ev.outcome(tenant_id="t", interaction_id="x9", kind="ACCEPTED", event_time=-5)
    )
    out.append(("hfloop.outcomes", late + b"\x01\x02", "trailing_bytes", "2 bytes after the record"))
    return out


def _training_run(**over: Any) -> dict[str, Any]:
    sv = SCHEMAS.latest("TrainingRun")
    rec = {f["name"]: f["default"] for f in sv.raw["fields"] if "default" in f}
    required = {"event_id": "run-1", "tenant_id": "t", "event_time": T0, "run_id": "r", "kind": "DPO",
                "window_start": T0 - 1000, "window_end": T0, "status": "TRAINED"}  # fmt: skip
    for f in sv.raw["fields"]:
        if f["name"] not in rec:
            rec[f["name"]] = required.get(f["name"], _default_for(f["type"]))
    rec.update(over)
    return rec


def _default_for(t: Any) -> Any:
    if isinstance(t, dict):
        if t.get("type") == "enum":
            return t["symbols"][0]
        if t.get("type") == "array":
            return []
        if t.get("type") == "map":
            return {}
        return _default_for(t["type"])
    if isinstance(t, list):
        return None if "null" in t else _default_for(t[0])
    return {"string": "s", "long": T0, "int": 0, "double": 0.0, "float": 0.0, "boolean": False, "bytes": b""}[
        t
    ]


@pytest.mark.parametrize("native_path", [True, False], ids=["native", "decode-fallback"])
def test_sink_dead_letters_exactly_what_must_not_be_stored(
    chdb_client: Any, native_path: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not native_path:  # no extension: every record is decoded, same verdicts
        monkeypatch.setattr("hfloop.analytics.batch.validator_of", lambda writer, reader: None)
    bad = _bad_inputs()
    outcomes = [ev.outcome(tenant_id="t", interaction_id=f"g{t}", kind="ACCEPTED", event_time=t, event_id=f"g{t}")
                for t in (1, T0, EVENT_TIME_MAX_MS)]  # fmt: skip
    good = [("hfloop.outcomes", SERDE.encode("Outcome", rec)) for rec in outcomes]
    good.append(("hfloop.training", SERDE.encode("TrainingRun", _training_run(window_end=EVENT_TIME_MAX_MS))))
    batch = Batch(SERDE)
    for n, (topic, value) in enumerate([(t, v) for t, v, _, _ in bad] + good):
        batch.add(topic, 0, n, b"k", value)
    written = ClickHouseWriter(chdb_client, "hfloop").write(batch)
    assert (written, batch.rows) == ({"outcomes": 3, "training_runs": 1}, 4)
    by_offset = {d["origin_offset"]: d for d in batch.dead}
    assert len(batch.dead) == len(by_offset) == len(bad)
    for n, (topic, value, reason, text) in enumerate(bad):
        dead = by_offset[n]
        assert (dead["origin_topic"], dead["payload"], dead["reason"]) == (topic, value, reason)
        assert text in dead["error"], dead["error"]
        assert SERDE.encode("DeadLetter", dead)
    # What was stored reads back through clickhouse_connect (an out-of-range time would raise here).
    rows = chdb_client.query(
        "SELECT event_id, event_time FROM hfloop.outcomes ORDER BY event_time"
    ).result_rows
    assert [r[0] for r in rows] == [f"g{t}" for t in (1, T0, EVENT_TIME_MAX_MS)]
    runs = chdb_client.query("SELECT window_end FROM hfloop.training_runs").result_rows
    assert runs[0][0].year == 9999


def test_timestamp_problem_names_the_field() -> None:
    sv = SCHEMAS.latest("TrainingRun")
    assert timestamp_problem(sv, _training_run()) is None
    assert (
        timestamp_problem(sv, _training_run(window_start=-3))
        == "TrainingRun.window_start -3 is before 1970 (negative)"
    )
    assert avro_block.timestamp_problem(sv, _training_run(event_time=EVENT_TIME_MAX_MS + 1)) == (
        f"TrainingRun.event_time {EVENT_TIME_MAX_MS + 1} is after 9999-12-31"
    )


def test_a_record_clickhouse_refuses_but_the_serde_reads_does_not_stall_the_sink(chdb_client: Any) -> None:
    good = SERDE.encode(
        "Outcome", ev.outcome(tenant_id="t", interaction_id="i", kind="ACCEPTED", event_time=T0)
    )
    # event_id's length (one varint byte) written as 12 bytes: same value, so Serde.decode reads it.
    overlong = good[:10] + bytes([good[10] | 0x80]) + b"\x80" * 10 + b"\x00" + good[11:]
    assert SERDE.decode_as(overlong, "Outcome") == SERDE.decode_as(good, "Outcome")
    batch = Batch(SERDE)
    batch.add("hfloop.outcomes", 0, 0, b"i", overlong)
    # ClickHouse refuses it alone ("Invalid Avro varint"); the body is not canonical, so it is the
    # record's fault: dead-lettered, not retried as an outage (which stalled the sink).
    assert ClickHouseWriter(chdb_client, "hfloop").write(batch) == {"outcomes": 0}
    (dead,) = batch.dead
    assert dead["reason"] == "refused_by_store" and "Invalid Avro varint" in dead["error"]
