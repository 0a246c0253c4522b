"""Hypothesis strategies for valid Python values of any parsed Avro schema (what an SDK user or a
processor would pass), shared by the native encoder and validator tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

PRIMITIVE = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


@dataclass(frozen=True)
class Draw:
    """How values are drawn where the tests differ."""

    text_size: int = 12  # longest string / bytes
    loose_numbers: bool = False  # ints where float/double are allowed (fastavro writes them)
    optional_defaults: bool = False  # below the top level, fields with a default may be left out
    timestamps: st.SearchStrategy[Any] | None = None  # for timestamp-millis longs, when given


def named_types(schema: Any, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Full name -> definition: a parsed schema defines each named type once, then refers by name."""
    out = {} if out is None else out
    if isinstance(schema, list):
        for s in schema:
            named_types(s, out)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed") and schema.get("name") not in out:
            out[schema["name"]] = schema
        for key in ("type", "items", "values"):
            if isinstance(schema.get(key), dict | list):
                named_types(schema[key], out)
        for f in schema.get("fields", []):
            named_types(f["type"], out)
    return out


def values(schema: Any, named: dict[str, Any], how: Draw = Draw(), depth: int = 0) -> st.SearchStrategy[Any]:
    """Valid Python values for a parsed schema."""
    if isinstance(schema, list):
        return st.one_of([values(s, named, how, depth) for s in schema])
    if isinstance(schema, str):
        return values(named[schema] if schema not in PRIMITIVE else {"type": schema}, named, how, depth)
    t = schema["type"]
    if not isinstance(t, str) or (
        t not in PRIMITIVE and t not in ("record", "enum", "fixed", "array", "map")
    ):
        return values(t, named, how, depth)
    text = st.text(st.characters(codec="utf-8"), max_size=how.text_size)
    if how.timestamps is not None and schema.get("logicalType") == "timestamp-millis":
        return how.timestamps
    floats, doubles = st.floats(width=32), st.floats()
    if how.loose_numbers:
        floats, doubles = floats | st.integers(-(2**24), 2**24), doubles | st.integers(-(2**53), 2**53)
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(), "boolean": st.booleans(), "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1), "float": floats, "double": doubles,
        "bytes": st.binary(max_size=how.text_size), "string": text,
    }  # fmt: skip
    if t in simple:
        return simple[t]
    if t == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if t == "enum":
        return st.sampled_from(schema["symbols"])
    if t in ("array", "map") and depth > 3:  # recursive schemas end in empty containers
        return st.just([] if t == "array" else {})
    if t == "array":
        return st.lists(values(schema["items"], named, how, depth + 1), max_size=3)
    if t == "map":
        return st.dictionaries(text, values(schema["values"], named, how, depth + 1), max_size=3)
    fields = {f["name"]: values(f["type"], named, how, depth + 1) for f in schema["fields"]}
    optional = {}
    if how.optional_defaults and depth > 0:
        optional = {f["name"]: fields.pop(f["name"]) for f in schema["fields"] if "default" in f}
    return st.fixed_dictionaries(fields, optional=optional)
