"""Compile a fastavro-parsed schema into the node list the native encoder runs.

One node per schema node, children by index, root at 0; a named type is compiled once and
referenced by index, so recursive schemas work. Anything the encoder does not mirror exactly
(logical types that change the value, ``error`` types, unknown names) raises
:class:`NotCompilable`, and the serde keeps fastavro for that record.
"""

from __future__ import annotations

from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# Logical types whose fastavro writer passes an int through unchanged (it converts only
# datetime/date/time objects, which the native encoder declines): same bytes for an int.
PASS_THROUGH_LOGICAL = frozenset({
    ("long", "timestamp-millis"), ("long", "timestamp-micros"), ("long", "local-timestamp-millis"),
    ("long", "local-timestamp-micros"), ("long", "time-micros"), ("int", "time-millis"), ("int", "date"),
})  # fmt: skip

Node = tuple[Any, ...]


class NotCompilable(ValueError):
    """The schema uses something the native encoder does not reproduce byte for byte."""


def compile_schema(parsed: Any, ranges: dict[str, tuple[int, int]] | None = None) -> list[Node]:
    """Node list for ``parsed`` (the output of ``fastavro.parse_schema``).

    ``ranges`` (logical type -> (lo, hi)) bounds the int/long nodes of that logical type: only
    the validator reads the bounds (the analytics sink refuses timestamps outside 1970..9999);
    the encoder ignores them.
    """
    named: dict[str, Any] = {}
    if isinstance(parsed, dict):
        named = dict(parsed.get("__named_schemas") or {})
    nodes: list[Node | None] = []
    index_of: dict[str, int] = {}

    def add(node: Node) -> int:
        nodes.append(node)
        return len(nodes) - 1

    def reserve() -> int:
        nodes.append(None)
        return len(nodes) - 1

    def walk(schema: Any) -> int:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return add((schema,))
            if schema in index_of:
                return index_of[schema]
            if schema not in named:
                raise NotCompilable(f"unknown type name {schema!r}")
            return walk(named[schema])
        if isinstance(schema, list):
            at = reserve()
            nodes[at] = ("union", tuple(walk(branch) for branch in schema))
            return at
        if not isinstance(schema, dict):
            raise NotCompilable(f"not a schema: {schema!r}")
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None and (kind, logical) not in PASS_THROUGH_LOGICAL:
            raise NotCompilable(f"logical type {logical!r} on {kind!r}")
        if not isinstance(kind, str) or (kind not in PRIMITIVES and kind not in ("record", "enum", "fixed",
                                                                                "array", "map")):  # fmt: skip
            return walk(kind)  # {"type": {...}}, {"type": [...]} or a named reference
        if kind in PRIMITIVES:
            if ranges and logical in ranges:
                return add((kind, *ranges[logical]))
            return add((kind,))
        if kind == "array":
            at = reserve()
            nodes[at] = ("array", walk(schema["items"]))
            return at
        if kind == "map":
            at = reserve()
            nodes[at] = ("map", walk(schema["values"]))
            return at
        name = schema["name"]
        if kind == "enum":
            index_of[name] = add(("enum", {s: i for i, s in enumerate(schema["symbols"])}))
            return index_of[name]
        if kind == "fixed":
            index_of[name] = add(("fixed", int(schema["size"])))
            return index_of[name]
        at = index_of[name] = reserve()  # before the fields: a field may refer to this record
        fields = []
        for f in schema["fields"]:
            fields.append((f["name"], walk(f["type"]), "default" in f, f.get("default")))
        nodes[at] = ("record", tuple(fields))
        return at

    root = walk(parsed)
    if root != 0:  # a bare named reference at the top: put the root first
        raise NotCompilable("the schema's root is not its first node")
    assert all(n is not None for n in nodes)
    return [n for n in nodes if n is not None]
