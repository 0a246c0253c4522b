"""POST /v1/analytics/query: read-only enforcement and tenant isolation, over real HTTP
semantics (FastAPI TestClient) on real chDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import analytics_dataset as ds
import pytest
from fastapi.testclient import TestClient

from hfloop.analytics.api import router_factory
from hfloop.analytics.querying import tenant_database
from hfloop.config import Settings
from hfloop.httpcommon import create_app

KEYS = {"acme": "k-acme", "globex": "k-globex"}


@pytest.fixture
def http(chdb_client: Any, tmp_path: Path) -> Iterator[TestClient]:
    ds.load(chdb_client, "acme")
    # globex holds one extra interaction, with a marker only globex may ever see.
    ds.load(chdb_client, "globex")
    chdb_client.command(
        "INSERT INTO hfloop.interactions (event_id, tenant_id, event_time, interaction_id, response) "
        "VALUES ('g-secret', 'globex', now64(3), 'secret', 'GLOBEX-SECRET')"
    )
    settings = Settings(data_dir=tmp_path, api_keys="k-acme:acme,k-globex:globex", analytics_max_rows=5)
    factory = router_factory(settings, chdb_client)
    with TestClient(create_app(settings, [factory])) as client:
        yield client
    factory.service.close()  # type: ignore[attr-defined]


def q(http: TestClient, tenant: str, body: dict[str, Any]) -> Any:
    return http.post("/v1/analytics/query", json=body, headers={"Authorization": f"Bearer {KEYS[tenant]}"})


def test_select_answers_columns_rows_and_caps_results(http: TestClient) -> None:
    r = q(
        http,
        "acme",
        {"sql": "SELECT interaction_id, response_chars FROM interactions ORDER BY interaction_id"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"columns": ["interaction_id", "response_chars"],
                        "rows": [["i1", 2], ["i2", 600], ["i3", 500], ["i4", 14], ["i5", 250]], "truncated": False}  # fmt: skip
    big = q(http, "acme", {"sql": "SELECT number FROM numbers(100)"}).json()
    assert big["truncated"] is True and len(big["rows"]) == 5
    named = q(http, "acme", {"name": "fast_loop_effect"}).json()
    assert named["rows"] == [["no_correction", 3, 2, 0.6667], ["served_correction", 2, 1, 0.5]]
    csv = q(http, "acme", {"sql": "SELECT 1 AS a, 'x' AS b", "format": "csv"})
    assert csv.text.splitlines() == ["a,b", "1,x"]
    assert http.post("/v1/analytics/query", json={"sql": "SELECT 1"}).status_code == 401


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("INSERT INTO interactions (event_id) VALUES ('x')", "INSERT"),
        ("ALTER TABLE interactions DELETE WHERE 1", "ALTER"),
        ("DROP TABLE interactions", "DROP"),
        ("SYSTEM FLUSH LOGS", "SYSTEM"),
        ("SELECT 1; DROP TABLE interactions", "multiple statements"),
        ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
        ("SELECT 1 SETTINGS max_result_rows = 100000", "SETTINGS"),
        ("SELECT * FROM interactions FORMAT CSV", "FORMAT"),
        ("SELECT * FROM interactions INTO OUTFILE '/tmp/x'", "OUTFILE"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "file()"),
        ("SELECT * FROM url('http://127.0.0.1:1/x', 'CSV')", "url()"),
        ("SELECT file('/etc/passwd')", "file()"),
        ("SELECT * FROM s3('http://x/y')", "s3()"),
        ("SELECT * FROM remote('127.0.0.1', system.one)", "remote()"),
        ("SELECT * FROM merge('hfloop', '.*')", "merge()"),
        ("SET readonly = 0", "SET"),
        ("CREATE TABLE x (a Int8) ENGINE = Memory", "CREATE"),
    ],
)
def test_writes_and_escapes_are_refused_with_403(http: TestClient, sql: str, why: str) -> None:
    r = q(http, "acme", {"sql": sql})
    assert r.status_code == 403, r.text
    assert why in r.json()["detail"]


def test_the_session_is_read_only_even_past_the_statement_check(http: TestClient, chdb_client: Any) -> None:
    """The second layer on its own: a write sent on the tenant's client (bypassing the
    checks) fails in ClickHouse, because the session itself is read-only."""
    from hfloop.analytics.querying import QueryService

    qs = QueryService(Settings(), chdb_client)
    try:
        client = qs.tenant_client("acme")
        with pytest.raises(Exception, match="readonly|READONLY"):
            client.command("CREATE TABLE hfloop.evil (a Int8) ENGINE = Memory")
        with pytest.raises(Exception, match="readonly|READONLY"):
            client.query("SELECT 1", settings={"readonly": 0})
    finally:
        qs.close()
    assert chdb_client.query("EXISTS TABLE hfloop.evil").result_rows[0][0] == 0


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT response FROM hfloop.interactions",
        "SELECT count() FROM interactions WHERE interaction_id IN (SELECT interaction_id FROM hfloop.interactions)",
        "SELECT response FROM interactions UNION ALL SELECT response FROM hfloop.interactions",
        "SELECT * FROM (SELECT * FROM hfloop.interactions FINAL) WHERE tenant_id = 'globex'",
        "WITH x AS (SELECT * FROM hfloop.interactions) SELECT response FROM x",
        "SELECT a.response FROM interactions a JOIN hfloop.interactions b ON a.interaction_id = b.interaction_id",
        "SELECT name FROM system.tables",
        "SELECT * FROM system.parts",
        "SELECT query FROM system.query_log",
        "SELECT response FROM `hfloop`.`interactions`",
        "SELECT response FROM {globex_db}.interactions",
        "SELECT (SELECT any(response) FROM hfloop.interactions WHERE tenant_id = 'globex')",
    ],
)
def test_no_path_reaches_another_tenants_rows(http: TestClient, sql: str) -> None:
    assert q(http, "globex", {"sql": "SELECT 1"}).status_code == 200  # globex's views exist
    sql = sql.replace("{globex_db}", tenant_database("hfloop", "globex"))
    r = q(http, "acme", {"sql": sql})
    # 403 from the guard; chDB has no query_log at all (a 400 naming the unknown table).
    assert r.status_code == (400 if "query_log" in sql else 403), r.text
    assert "GLOBEX-SECRET" not in r.text


def test_each_key_sees_only_its_tenant(http: TestClient) -> None:
    leak = "SELECT tenant_id, count() FROM interactions WHERE tenant_id = 'globex' OR 1 GROUP BY tenant_id"
    assert q(http, "acme", {"sql": leak}).json()["rows"] == [["acme", 5]]
    assert q(http, "globex", {"sql": leak}).json()["rows"] == [["globex", 6]]
    for table in ("feedback", "outcomes", "labels", "preferences", "memory", "routing", "doc_weights",
                  "training_runs", "dead_letters"):  # fmt: skip
        rows = q(http, "acme", {"sql": f"SELECT DISTINCT tenant_id FROM {table}"}).json()["rows"]
        assert rows == [["acme"]], table
    secret = q(http, "acme", {"sql": "SELECT count() FROM interactions WHERE response = 'GLOBEX-SECRET'"})
    assert secret.json()["rows"] == [[0]]
    assert q(
        http, "globex", {"sql": "SELECT count() FROM interactions WHERE response = 'GLOBEX-SECRET'"}
    ).json()["rows"] == [[1]]


def test_bad_sql_is_a_400_with_clickhouse_words(http: TestClient) -> None:
    r = q(http, "acme", {"sql": "SELECT no_such_column FROM interactions"})
    assert r.status_code == 400 and "no_such_column" in r.json()["detail"]
    assert q(http, "acme", {"name": "nope"}).status_code == 400
    assert q(http, "acme", {"name": "pool_bias", "params": {"min_ratings": "many"}}).status_code == 400
