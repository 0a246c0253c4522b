"""The analytics store: one clickhouse-connect client factory and versioned migrations.

The same code serves chDB (``chdb:///path``, in-process) and a ClickHouse server
(``http(s)://...``); only the DSN differs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hfloop.config import Settings

_MIGRATION = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def connect(settings: Settings, database: str | None = None, client_settings: dict[str, Any] | None = None,
            **kwargs: Any) -> Any:  # fmt: skip
    """A clickhouse-connect client for ``settings.clickhouse``; ``client_settings`` are ClickHouse
    settings sent with every query (e.g. readonly).

    With chDB, every client of one process on the same path shares one engine (the folder is
    locked against other processes, not against a second client here).
    """
    import clickhouse_connect

    if database is not None:
        kwargs["database"] = database
    if client_settings:
        kwargs["settings"] = client_settings
    return clickhouse_connect.get_client(dsn=settings.clickhouse, **kwargs)


def is_embedded(settings: Settings) -> bool:
    return settings.clickhouse.startswith("chdb:")


def check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a plain ClickHouse identifier")
    return name


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self, database: str) -> list[str]:
        """The file's statements, ``{db}`` replaced; comments-only chunks dropped."""
        body = self.sql.replace("{db}", check_ident(database))
        out = []
        for chunk in body.split(";\n"):
            code = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--")).strip()
            if code.rstrip(";"):
                out.append(code.rstrip(";"))
        return out


def load_migrations() -> list[Migration]:
    folder = resources.files("hfloop.analytics") / "migrations"
    found = []
    for entry in folder.iterdir():
        m = _MIGRATION.match(entry.name)
        if m:
            found.append(Migration(int(m["version"]), m["name"], entry.read_text()))
    found.sort(key=lambda mg: mg.version)
    versions = [mg.version for mg in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {versions}")
    return found


class MigrationError(RuntimeError):
    pass


def migrate(client: Any, database: str) -> list[str]:
    """Apply the migrations not yet recorded in ``<db>.schema_migrations``; returns their names.

    Idempotent: applied versions are skipped, and every statement is itself ``IF NOT EXISTS``
    so two processes migrating at once (server mode) do no harm. A migration whose file changed
    after it was applied is an error: history is append-only.
    """
    db = check_ident(database)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    applied = {
        int(v): c
        for v, c in client.query(f"SELECT version, checksum FROM {db}.schema_migrations FINAL").result_rows
    }
    done = []
    for mg in load_migrations():
        if mg.version in applied:
            if applied[mg.version] != mg.checksum:
                raise MigrationError(f"migration {mg.version:04d}_{mg.name} changed after it was applied; "
                                     "add a new migration instead")  # fmt: skip
            continue
        for statement in mg.statements(db):
            client.command(statement)
        client.insert(f"{db}.schema_migrations", [[mg.version, mg.name, mg.checksum]],
                      column_names=["version", "name", "checksum"])  # fmt: skip
        done.append(f"{mg.version:04d}_{mg.name}")
    return done


def applied_migrations(client: Any, database: str) -> list[tuple[int, str]]:
    db = check_ident(database)
    rows = client.query(
        f"SELECT version, name FROM {db}.schema_migrations FINAL ORDER BY version"
    ).result_rows
    return [(int(v), str(n)) for v, n in rows]
