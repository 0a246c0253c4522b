"""Schema files: documented, well-formed, and every version BACKWARD_TRANSITIVE compatible."""

from __future__ import annotations

import io
import json

import pytest
from fastavro import schemaless_reader, schemaless_writer

from hfloop.events.schemas import load_schemas, schemas_dir
from hfloop.events.serde import Serde, _strip_logical

SCHEMAS = load_schemas()
COMMON = {"event_id", "tenant_id", "event_time"}
ALL_RECORDS = {
    "Interaction", "Feedback", "Outcome", "Label", "PreferencePair", "MemoryUpdate",
    "RoutingUpdate", "DocWeightUpdate", "TrainingRun", "DeadLetter",
}  # fmt: skip


def _fields(raw):
    yield from raw["fields"]
    for f in raw["fields"]:
        t = f["type"]
        for cand in t if isinstance(t, list) else [t]:
            if isinstance(cand, dict) and cand.get("type") == "record":
                yield from _fields(cand)
            items = cand.get("items") if isinstance(cand, dict) and cand.get("type") == "array" else None
            if isinstance(items, dict) and items.get("type") == "record":
                yield from _fields(items)


def test_every_contract_record_exists():
    assert set(SCHEMAS.names()) == ALL_RECORDS


@pytest.mark.parametrize("name", sorted(ALL_RECORDS))
def test_common_fields_and_docs(name):
    for version in SCHEMAS.versions[name].values():
        names = {f["name"] for f in version.raw["fields"]}
        assert names >= COMMON, f"{name} v{version.version} lacks {COMMON - names}"
        ts = next(f for f in version.raw["fields"] if f["name"] == "event_time")
        assert ts["type"] == {"type": "long", "logicalType": "timestamp-millis"}
        undocumented = [f["name"] for f in _fields(version.raw) if not f.get("doc")]
        assert not undocumented, f"{name} v{version.version}: fields without doc: {undocumented}"


def _example(raw) -> dict:
    """A record with every field filled with a type-correct value (defaults where present)."""

    def value(t):
        if isinstance(t, list):
            return value(t[1]) if t[0] == "null" else value(t[0])
        if isinstance(t, dict):
            kind = t["type"]
            if kind == "record":
                return {f["name"]: value(f["type"]) for f in t["fields"]}
            if kind == "array":
                return [value(t["items"])]
            if kind == "map":
                return {"k": value(t["values"])}
            if kind == "enum":
                return t["symbols"][0]
            return value(kind)
        return {"string": "s", "long": 7, "int": 3, "double": 0.5, "boolean": True, "bytes": b"\x00\x01",
                "float": 0.25, "null": None}[t]  # fmt: skip

    return {f["name"]: value(f["type"]) for f in raw["fields"]}


@pytest.mark.parametrize("name", sorted(ALL_RECORDS))
def test_backward_transitive(name):
    """Each version reads data written by every earlier version (BACKWARD_TRANSITIVE)."""
    versions = sorted(SCHEMAS.versions[name].items())
    for i, (_, reader) in enumerate(versions):
        for _, writer in versions[: i + 1]:
            rec = _example(writer.raw)
            buf = io.BytesIO()
            w = Serde()._by_fp[writer.fingerprint].plain
            r = Serde()._by_fp[reader.fingerprint].plain
            schemaless_writer(buf, w, rec)
            buf.seek(0)
            out = schemaless_reader(buf, w, r)
            for k, v in rec.items():
                assert out[k] == v
            added = {f["name"] for f in reader.raw["fields"]} - set(rec)
            for f in reader.raw["fields"]:
                if f["name"] in added:
                    assert "default" in f, f"{name}: v{reader.version} adds {f['name']} without a default"


def test_interaction_has_a_second_version():
    assert sorted(SCHEMAS.versions["Interaction"]) == [1, 2]


def test_files_are_json_and_named_by_record():
    for path in schemas_dir().glob("*.avsc"):
        raw = json.loads(path.read_text())
        assert path.name.startswith(raw["name"] + ".v")
        assert _strip_logical(raw) != raw or "event_time" not in json.dumps(raw)
