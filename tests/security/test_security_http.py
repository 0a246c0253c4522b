"""Keys and tenants on the one HTTP app ``hfloop dev`` serves (gateway + memory lookup +
routing/weights + analytics), built as dev.py builds it, with the memory worker consuming
over SASL_SSL from the secured broker and analytics on real chDB.

Every route but /healthz (and the static API description) answers 401 without a valid key,
whatever else is wrong with the request; one tenant's key never reads or changes another
tenant's memory, routing, weights or analytics rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from security_helpers import eventually

from hfloop.analytics import store as analytics_store
from hfloop.analytics.api import router_factory
from hfloop.events.kafka import RecordProducer, create_topics
from hfloop.events.serde import default_serde
from hfloop.gateway.app import AckingProducer, events_router
from hfloop.httpcommon import create_app
from hfloop.memory.api import routers as memory_routers
from hfloop.memory.embed import HashEmbedder
from hfloop.memory.service import MemoryService

KEYS = {"acme": "k-acme-1f0c", "globex": "k-globex-9d3e"}
# FastAPI's API description pages: no tenant data, no key. Anything else public fails the test.
PUBLIC = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
CONTRACT = {"/v1/events", "/v1/memory/search", "/v1/routing/{agent_id}", "/v1/retrieval/weights",
            "/v1/analytics/query", "/metrics"}  # fmt: skip


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


@pytest.fixture
def stack(secure_settings, tmp_path) -> Iterator[tuple[TestClient, MemoryService, Any]]:
    import clickhouse_connect

    s = secure_settings("SASL_SSL", api_keys=",".join(f"{k}:{t}" for t, k in KEYS.items()), embedder="hash",
                        memory_group_id=f"mem-{uuid.uuid4().hex[:8]}", memory_trusted_annotators="lead",
                        routing_min_evidence=3, routing_half_life_s=0.0, weights_half_life_s=0.0)  # fmt: skip
    create_topics(s)
    memory = MemoryService(s, embedder=HashEmbedder())
    memory.start()
    chdb = clickhouse_connect.get_client(dsn=f"chdb:///{tmp_path / 'chdb'}")
    analytics_store.migrate(chdb, s.analytics_database)
    queries = router_factory(s, chdb)
    producer = AckingProducer(s)
    app = create_app(s, [events_router(s, default_serde(), producer), *memory_routers(memory), queries])
    try:
        with TestClient(app) as client:
            yield client, memory, chdb
    finally:
        producer.close()
        memory.stop()
        queries.service.close()  # type: ignore[attr-defined]
        chdb.close()


def _requests(app: Any) -> list[tuple[str, str]]:
    """(method, concrete path) of every route: the OpenAPI description lists the API routes (those
    of included routers too), ``app.routes`` adds the app's own pages that the description omits."""
    out = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    for route in app.routes:
        if hasattr(route, "path") and hasattr(route, "methods"):
            out |= {(m, route.path) for m in route.methods or () if m not in ("HEAD", "OPTIONS")}
    return sorted((m, p.replace("{agent_id}", "support")) for m, p in out)


def test_every_route_but_health_answers_401_without_a_valid_key(stack) -> None:
    client, _, _ = stack
    app: Any = client.app
    requests = _requests(app)
    assert {p.replace("support", "{agent_id}") for _, p in requests} >= CONTRACT | {
        "/v1/memory/retract", "/v1/analytics/queries"}  # fmt: skip
    bad_headers = [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {KEYS['acme']}x"},
                   {"Authorization": f"Basic {KEYS['acme']}"}, {"Authorization": KEYS["acme"]},
                   {"Authorization": "Bearer "}]  # fmt: skip
    public, guarded = set(), []
    for method, path in requests:
        # A body that would be valid: the 401 must come from the key, not from validation.
        body = {"sql": "SELECT 1"} if "analytics" in path else {"text": "x", "agent_id": "support"}
        params = {"doc_ids": "d1"} if path == "/v1/retrieval/weights" else None
        statuses = {client.request(method, path, headers=h, json=body, params=params).status_code
                    for h in bad_headers}  # fmt: skip
        if statuses == {401}:
            guarded.append((method, path))
        else:
            public.add(path)
    assert public == PUBLIC, public
    assert len(guarded) >= 8, guarded
    # The same requests with a valid key get past authentication.
    for method, path in guarded:
        body = {"sql": "SELECT 1"} if "analytics" in path else {"text": "x", "agent_id": "support"}
        params = {"doc_ids": "d1"} if path == "/v1/retrieval/weights" else None
        r = client.request(method, path, headers=auth("acme"), json=body, params=params)
        assert r.status_code != 401, (method, path, r.text)
    docs = client.get("/openapi.json").text + client.get("/healthz").text
    assert not any(k in docs for k in KEYS.values()) and "acme" not in docs and "globex" not in docs


def test_one_tenants_key_never_reads_or_changes_another_tenants_state(stack, secure_settings) -> None:
    client, memory, chdb = stack
    s = memory.settings
    # globex's state, arriving through Kafka (SASL_SSL) like the stream processor's output would.
    produce = RecordProducer(s, default_serde())
    fid = uuid.uuid4().hex
    produce.send("MemoryUpdate", {
        "event_id": uuid.uuid4().hex, "tenant_id": "globex", "event_time": 1_790_000_000_000, "op": "UPSERT",
        "memory_id": f"mem-{fid}", "agent_id": "support", "route": "billing", "situation": "reset my password",
        "original_answer": "old", "corrected_answer": "GLOBEX-ONLY answer", "annotator_id": "lead", "trust": 0.0,
        "visibility": "PRIVATE", "reason": "correction", "source_event_ids": [fid],
    })  # fmt: skip
    for i in range(4):
        produce.send("Label", {
            "event_id": uuid.uuid4().hex, "tenant_id": "globex", "event_time": 1_790_000_000_000 + i,
            "interaction_id": uuid.uuid4().hex, "version": 1, "score": -1.0, "confidence": 1.0,
            "trigger": "window_closed", "agent_id": "support", "agent_version": "1", "model_id": "m",
            "route": "billing", "session_id": "s", "user_id": "u", "n_explicit": 1, "n_implicit": 0,
            "retrieved_doc_ids": ["doc-g"], "memory_ids_used": [], "annotator_ids": ["lead"],
            "contributing_event_ids": [uuid.uuid4().hex],
        })  # fmt: skip
    produce.flush()
    search = {"text": "reset my password", "agent_id": "support", "threshold": -1.0, "user_id": "lead"}

    def globex_sees_all() -> bool:
        hits = client.post("/v1/memory/search", json=search, headers=auth("globex")).json()["results"]
        routes = client.get("/v1/routing/support", headers=auth("globex")).json()["routes"]
        weights = client.get(
            "/v1/retrieval/weights", params={"doc_ids": "doc-g"}, headers=auth("globex")
        ).json()
        return (
            bool(hits)
            and routes.get("billing", {}).get("action") == "FALLBACK_MODEL"
            and (weights["weights"]["doc-g"] < 1.0)
        )

    eventually(globex_sees_all, timeout=60)
    # acme asks for exactly the same things: nothing of globex's comes back.
    assert client.post("/v1/memory/search", json=search, headers=auth("acme")).json() == {"results": []}
    assert client.get("/v1/routing/support", headers=auth("acme")).json()["routes"] == {}
    weights = client.get("/v1/retrieval/weights", params={"doc_ids": "doc-g"}, headers=auth("acme")).json()
    assert weights == {"weights": {"doc-g": 1.0}}
    # acme "retracts" globex's annotator and event: only acme's own (empty) state is touched.
    for body in ({"annotator_id": "lead"}, {"event_id": fid}):
        r = client.post("/v1/memory/retract", json=body, headers=auth("acme"))
        assert r.status_code == 200 and r.json()["removed_entries"] == 0 and r.json()["removed_labels"] == 0
    assert globex_sees_all()
    assert memory.store.count_entries("globex") == 1
    # Analytics: globex's rows exist in the shared table, acme's key reads only acme's view.
    chdb.command(
        "INSERT INTO hfloop.interactions (event_id, tenant_id, event_time, interaction_id, response) "
        "VALUES ('g-1', 'globex', now64(3), 'gi', 'GLOBEX-ROW')"
    )
    sql = {"sql": "SELECT count() FROM interactions WHERE response = 'GLOBEX-ROW'"}
    assert client.post("/v1/analytics/query", json=sql, headers=auth("acme")).json()["rows"] == [[0]]
    assert client.post("/v1/analytics/query", json=sql, headers=auth("globex")).json()["rows"] == [[1]]
    for write in ("INSERT INTO interactions (event_id) VALUES ('x')", "ALTER TABLE interactions DELETE WHERE 1",
                  "DROP TABLE interactions", "SELECT * FROM system.tables",
                  "SELECT response FROM hfloop.interactions"):  # fmt: skip
        r = client.post("/v1/analytics/query", json={"sql": write}, headers=auth("acme"))
        assert 400 <= r.status_code < 500 and "GLOBEX-ROW" not in r.text, (write, r.status_code, r.text)
    assert chdb.query("SELECT count() FROM hfloop.interactions").result_rows == [(1,)]
