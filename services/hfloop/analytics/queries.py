"""The named analyst queries: ``queries/<name>.sql`` files with a documented header.

Header lines (SQL comments) carry the contract of each query::

    -- name: feedback_rates
    -- title: one line
    -- description: what it answers (continued on '--   ' lines)
    -- param: from_ms Int64 = 0  -- what it means

Parameters are ClickHouse query parameters (``{from_ms:Int64}``), bound by the server, never
pasted into the SQL; a parameter the caller leaves out takes its documented default. Queries
name tables unqualified: they run inside the caller's tenant view database (see guard.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

_PARAM = re.compile(
    r"^--\s*param:\s*(?P<name>\w+)\s+(?P<type>.+?)\s*=\s*(?P<default>\S+)\s*(?:--\s*(?P<doc>.*))?$"
)
_INT_TYPES = ("Int", "UInt")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str
    doc: str

    def convert(self, value: Any) -> Any:
        """The Python value for this parameter (strings from the CLI or JSON become typed)."""
        if self.type.startswith(_INT_TYPES):
            return int(value)
        if self.type.startswith("Float"):
            return float(value)
        return str(value)


@dataclass(frozen=True)
class NamedQuery:
    name: str
    title: str
    description: str
    sql: str
    params: tuple[Param, ...] = field(default_factory=tuple)

    def bind(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        values = dict(values or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"query {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(known) or 'none'}")  # fmt: skip
        out = {}
        for p in self.params:
            raw = values.get(p.name, p.default)
            try:
                out[p.name] = p.convert(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"parameter {p.name} of {self.name!r} must be {p.type}, got {raw!r}"
                ) from exc
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "params": [{"name": p.name, "type": p.type, "default": p.default, "doc": p.doc} for p in self.params]}  # fmt: skip


def parse(text: str, filename: str = "") -> NamedQuery:
    meta: dict[str, str] = {}
    params: list[Param] = []
    last = ""
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("--"):
            continue
        m = _PARAM.match(s)
        if m:
            params.append(Param(m["name"], m["type"], m["default"], (m["doc"] or "").strip()))
            last = ""
            continue
        body = s[2:]
        key, sep, value = body.strip().partition(":")
        if sep and key in ("name", "title", "description") and not body.startswith("   "):
            meta[key] = value.strip()
            last = key
        elif last == "description" and body.startswith("   "):
            meta["description"] += " " + body.strip()
    for key in ("name", "title", "description"):
        if not meta.get(key):
            raise ValueError(f"{filename}: named query header lacks '-- {key}:'")
    return NamedQuery(meta["name"], meta["title"], meta["description"], text, tuple(params))


@lru_cache(maxsize=1)
def catalog() -> dict[str, NamedQuery]:
    folder = resources.files("hfloop.analytics") / "queries"
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            q = parse(entry.read_text(), entry.name)
            if q.name != entry.name[:-4]:
                raise ValueError(f"{entry.name}: '-- name: {q.name}' must match the file name")
            out[q.name] = q
    return out


def get(name: str) -> NamedQuery:
    try:
        return catalog()[name]
    except KeyError:
        raise KeyError(f"no named query {name!r}; known: {', '.join(catalog())}") from None
