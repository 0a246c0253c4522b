"""``hfloop analytics migrate | query | queries | report``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hfloop.config import get_settings

app = typer.Typer(help="ClickHouse history: migrate, query, report.", no_args_is_help=True)
console = Console()


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep:
            _fail(f"--param wants key=value, got {p!r}")
        out[k] = v
    return out


@app.command()
def migrate() -> None:
    """Apply the versioned migrations (idempotent; the sink also runs them at start)."""
    from hfloop.analytics import store

    settings = get_settings()
    try:
        client = store.connect(settings)
    except Exception as exc:
        _fail(
            f"cannot open {settings.clickhouse}: {exc} (with embedded chDB, `hfloop dev` migrates at start)"
        )
    done = store.migrate(client, settings.analytics_database)
    applied = store.applied_migrations(client, settings.analytics_database)
    client.close()
    console.print(f"applied now: {', '.join(done) or 'nothing (up to date)'}; "
                  f"schema version {applied[-1][0] if applied else 0}")  # fmt: skip


@app.command()
def query(
    sql: str = typer.Argument(
        None, help="One SELECT over the tenant's tables (interactions, feedback, ...)."
    ),
    name: str = typer.Option(
        None, "--name", "-n", help="Run a named query instead (see `hfloop analytics queries`)."
    ),
    param: list[str] = typer.Option([], "--param", "-p", help="Query parameter key=value (repeatable)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json"),
    tenant: str = typer.Option(None, help="Tenant (server DSN only; else the API key decides)."),
) -> None:
    """Run SQL or a named query: via the running API (embedded chDB) or the ClickHouse server."""
    from hfloop.analytics.executor import executor_for

    if (sql is None) == (name is None):
        _fail("give SQL or --name")
    try:
        ex = executor_for(get_settings(), tenant)
        result = ex.named(name, _params(param)) if name else ex.sql(sql, _params(param) or None)
        ex.close()
    except Exception as exc:
        _fail(str(exc))
    if fmt == "json":
        sys.stdout.write(json.dumps(result.as_dict(), default=str) + "\n")
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(result.columns)
        w.writerows(result.rows)
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        if result.truncated:
            console.print(f"[yellow]truncated at {len(result.rows)} rows[/yellow]")


@app.command("queries")
def list_queries() -> None:
    """List the named queries and their parameters."""
    from hfloop.analytics import queries

    table = Table("name", "title", "params")
    for q in queries.catalog().values():
        table.add_row(q.name, q.title, ", ".join(f"{p.name}={p.default}" for p in q.params))
    console.print(table)


@app.command()
def report(
    out: Path = typer.Option(Path("analytics-report"), help="Folder for index.html and the PNG plots."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="Parameter for every query that has it, key=value."
    ),
    tenant: str = typer.Option(None, help="Tenant (server DSN only; else the API key decides)."),
) -> None:
    """Write an HTML report with plots of the analyst questions."""
    from hfloop.analytics import report as rep
    from hfloop.analytics.executor import executor_for

    try:
        ex = executor_for(get_settings(), tenant)
        index = rep.build(ex, out, _params(param))
        ex.close()
    except Exception as exc:
        _fail(str(exc))
    console.print(f"report: {index}")
