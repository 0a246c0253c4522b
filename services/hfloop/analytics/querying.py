"""Run analyst SQL for one tenant: tenant view databases, checks, limits, results.

Tenant isolation without server row policies (chDB has none): every tenant gets a database of
views, ``<db>_t_<hash>``, two per table: ``SELECT ... FROM <db>.<table> FINAL WHERE tenant_id =
'<tenant>'`` and ``<table>_raw``, the same without FINAL (see :func:`view_names`). A tenant's
query runs with that database as its current database, so ``FROM interactions`` reads the
tenant's view, and the query tree check (guard.py) refuses any other table: the shared tables,
system tables, another tenant's views. FINAL in the plain views also makes every reader see each
event once.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import ipaddress
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from hfloop.analytics import guard, queries, store
from hfloop.analytics.tables import TABLES
from hfloop.config import Settings


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool

    def as_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "truncated": self.truncated}


def jsonable(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else None
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(v)
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [jsonable(x) for x in v]
    return str(v)


def tenant_database(database: str, tenant: str) -> str:
    return f"{store.check_ident(database)}_t_{hashlib.sha256(tenant.encode()).hexdigest()[:16]}"


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


RAW_SUFFIX = "_raw"


def view_names(table: str) -> tuple[tuple[str, bool], tuple[str, bool]]:
    """A tenant's two views of ``table``: (name, reads FINAL).

    ``<table>`` says FINAL: each event once, whatever the merges did; every count is exact.
    ``<table>_raw`` does not: a replayed event can show twice until its parts merge. It exists
    for aggregates that a duplicate cannot change (latest per key via argMax or max, DISTINCT,
    min/max), which then skip FINAL's read-time merge of every overlapping part (~0.2-0.4 s per
    3 million feedback rows). The named queries say in their comments which view they read and why.
    """
    return (table, True), (table + RAW_SUFFIX, False)


# readonly=2: no writes, no DDL, but per-query limits may still be set (by us: the guard refuses
# SETTINGS clauses and SET statements from the caller). The whole session of a tenant client
# is read-only, not only the statements we thought of.
READ_ONLY = {"readonly": 2}


def sibling_client(client: Any, settings: Settings, database: str) -> Any:
    """A client on the same store as ``client`` with another current database.

    chDB: a second handle on the same folder (allowed inside the process that holds it)."""
    path = getattr(client, "path", None)
    if path is not None and str(getattr(client, "uri", "")).startswith("chdb:"):
        from clickhouse_connect.driver._chdbclient import ChdbClient

        c = ChdbClient(path=path, database=database)
        # The handle's session turns read-only for good (it cannot even be switched back).
        c.command("SET readonly = 2")
        return c
    # HTTP is stateless: the setting rides on every request of this client.
    return store.connect(settings, database=database, client_settings=READ_ONLY)


class QueryService:
    """Checked, limited, tenant-scoped queries over a (shared) clickhouse-connect client."""

    def __init__(self, settings: Settings, client: Any) -> None:
        self.settings = settings
        self.client = client
        self.database = store.check_ident(settings.analytics_database)
        self._tenants: dict[str, Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for c in self._tenants.values():
                c.close()
            self._tenants.clear()

    def _columns(self, table: str) -> list[str]:
        rows = self.client.query(
            "SELECT name FROM system.columns WHERE database = %(db)s AND table = %(t)s ORDER BY position",
            parameters={"db": self.database, "t": table},
        ).result_rows
        if not rows:
            raise RuntimeError(
                f"table {self.database}.{table} does not exist: run `hfloop analytics migrate`"
            )
        return [r[0] for r in rows]

    def tenant_client(self, tenant: str) -> Any:
        """The client whose current database is ``tenant``'s views (created on first use)."""
        with self._lock:
            c = self._tenants.get(tenant)
            if c is not None:
                return c
            tdb = tenant_database(self.database, tenant)
            self.client.command(f"CREATE DATABASE IF NOT EXISTS {tdb}")
            for table in TABLES:
                cols = ", ".join(f"`{c}`" for c in self._columns(table))
                for view, final in view_names(table):
                    self.client.command(
                        f"CREATE OR REPLACE VIEW {tdb}.{view} AS SELECT {cols} FROM {self.database}.{table}"
                        f"{' FINAL' if final else ''} WHERE tenant_id = {_quote(tenant)}"
                    )
            c = self._tenants[tenant] = sibling_client(self.client, self.settings, tdb)
            return c

    def _limits(self, max_rows: int) -> dict[str, Any]:
        return {
            "max_result_rows": max_rows + 1,
            "result_overflow_mode": "break",
            "max_execution_time": self.settings.analytics_max_execution_s,
        }

    def check(self, tenant: str, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Both guard layers; returns the tenant's client. Raises guard.Refused."""
        guard.check_statement(sql)
        c = self.tenant_client(tenant)
        tdb = tenant_database(self.database, tenant)
        try:
            explain = c.raw_query("EXPLAIN QUERY TREE " + sql.strip().rstrip(";"), parameters=parameters)
        except Exception as exc:
            raise QueryError(_short(exc)) from exc
        # system.one is the constant table a SELECT without FROM reads.
        allowed = {f"{tdb}.{view}" for table in TABLES for view, _final in view_names(table)}
        guard.check_tree(guard.tree_refs(explain.decode()), allowed | {"system.one"})
        return c

    def run_sql(self, tenant: str, sql: str, parameters: dict[str, Any] | None = None,
                max_rows: int | None = None) -> QueryResult:  # fmt: skip
        cap = max_rows or self.settings.analytics_max_rows
        c = self.check(tenant, sql, parameters)
        try:
            res = c.query(sql.strip().rstrip(";"), parameters=parameters, settings=self._limits(cap))
        except Exception as exc:
            raise QueryError(_short(exc)) from exc
        rows = [[jsonable(v) for v in row] for row in res.result_rows[: cap + 1]]
        return QueryResult(list(res.column_names), rows[:cap], len(rows) > cap)

    def run_named(self, tenant: str, name: str, params: dict[str, Any] | None = None,
                  max_rows: int | None = None) -> QueryResult:  # fmt: skip
        q = queries.get(name)
        return self.run_sql(tenant, q.sql, q.bind(params), max_rows)


class QueryError(Exception):
    """ClickHouse rejected or failed the query (a 400 for the caller, with ClickHouse's words)."""


def _short(exc: Exception) -> str:
    text = str(exc).strip()
    return text.split("\n")[0][:500]
