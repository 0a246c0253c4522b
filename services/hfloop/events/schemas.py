"""The Avro schemas in ``schemas/``: every released version, parsed, fingerprinted.

Files are named ``<Record>.v<N>.avsc``. The newest version of a record is the reader
schema; every version is a possible writer schema, found by its CRC-64-AVRO
fingerprint (single-object encoding) or by its registry id (Confluent framing).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

# Event timestamps (timestamp-millis) the system accepts: 1970-01-01 .. 9999-12-31, the range
# ClickHouse's DateTime64 and Python's datetime both hold. Outside it a record is invalid.
EVENT_TIME_MAX_MS = 253_402_300_799_999


def event_time_problem(value: int) -> str | None:
    """Why a timestamp-millis value is out of the accepted range (None when it is fine)."""
    if value < 0:
        return f"{value} is before 1970 (negative)"
    if value > EVENT_TIME_MAX_MS:
        return f"{value} is after 9999-12-31"
    return None


_FILE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9]*)\.v(?P<version>\d+)\.avsc$")


def schemas_dir() -> Path:
    """The repo's ``schemas/`` in a checkout, else the copy packaged into the wheel."""
    repo = Path(__file__).resolve().parents[3] / "schemas"
    if repo.is_dir():
        return repo
    return Path(str(resources.files("hfloop") / "_schemas"))


@dataclass(frozen=True)
class SchemaVersion:
    name: str
    version: int
    raw: dict[str, Any]
    parsed: Any
    canonical: str
    fingerprint: bytes  # 8 bytes, little-endian, as written on the wire

    @property
    def full_name(self) -> str:
        ns = self.raw.get("namespace")
        return f"{ns}.{self.name}" if ns else self.name


@dataclass
class SchemaSet:
    versions: dict[str, dict[int, SchemaVersion]] = field(default_factory=dict)
    by_fingerprint: dict[bytes, SchemaVersion] = field(default_factory=dict)

    def latest(self, name: str) -> SchemaVersion:
        try:
            record_versions = self.versions[name]
        except KeyError:
            raise KeyError(f"no schema named {name!r}; known: {sorted(self.versions)}") from None
        return record_versions[max(record_versions)]

    def get(self, name: str, version: int) -> SchemaVersion:
        return self.versions[name][version]

    def names(self) -> list[str]:
        return sorted(self.versions)


def crc64_fingerprint(canonical: str) -> bytes:
    """CRC-64-AVRO (Rabin) of the parsing canonical form, little-endian bytes."""
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def load_version(path: Path) -> SchemaVersion:
    m = _FILE.match(path.name)
    if not m:
        raise ValueError(f"schema file {path.name!r} is not named <Record>.v<N>.avsc")
    raw = json.loads(path.read_text())
    if raw.get("name") != m["name"]:
        raise ValueError(f"{path.name}: record name {raw.get('name')!r} does not match the file name")
    parsed = parse_schema(raw, _write_hint=False)
    canonical = to_parsing_canonical_form(raw)
    return SchemaVersion(m["name"], int(m["version"]), raw, parsed, canonical, crc64_fingerprint(canonical))


@lru_cache(maxsize=4)
def load_schemas(directory: str | None = None) -> SchemaSet:
    root = Path(directory) if directory else schemas_dir()
    out = SchemaSet()
    for path in sorted(root.glob("*.avsc")):
        sv = load_version(path)
        out.versions.setdefault(sv.name, {})[sv.version] = sv
        out.by_fingerprint[sv.fingerprint] = sv
    if not out.versions:
        raise FileNotFoundError(f"no *.avsc schemas in {root}")
    return out
