"""The lookup API under bad input: 500 malformed requests get 4xx, and it keeps answering."""

from __future__ import annotations

import json
import random
from typing import Any

from fastapi.testclient import TestClient

from hfloop.memory.api import create_memory_app


def _malformed(rng: random.Random, i: int) -> tuple[str, str, Any, dict[str, str]]:
    """(method, path, body, extra headers) of one bad request, cycling through kinds of bad."""
    good = {"text": "reset password", "agent_id": "support", "k": 3, "threshold": 0.5}
    # Per field, values that are wrong for it (a random value might be valid by chance).
    junk: dict[str, list[Any]] = {
        "text": [1, True, [], {}, "", None],  # None: then neither text nor vector
        "agent_id": [None, 1, "", [], "a" * 201],
        "k": [None, "many", 0, -1, 1.5, []],
        "threshold": [None, "high", 1.5, -2, []],
        "vector": ["abc", [1, "a"], {}, [0.1] * 3],
        "user_id": ["", 5, [], "u" * 201],
        "route": ["", 5, {}],
        "unexpected": [1, "x", None],
    }
    field = rng.choice(list(junk))
    variants: list[tuple[str, str, Any, dict[str, str]]] = [
        ("POST", "/v1/memory/search", {**good, field: rng.choice(junk[field])}, {}),
        ("POST", "/v1/memory/search", {k: v for k, v in good.items() if k != "agent_id"}, {}),
        ("POST", "/v1/memory/search", {"agent_id": "support"}, {}),  # neither text nor vector
        ("POST", "/v1/memory/search", {**good, "vector": [0.1] * rng.randint(0, 383)}, {}),  # wrong dimension
        ("POST", "/v1/memory/search", {**good, "k": rng.choice([0, -5, 51, 10**9])}, {}),
        ("POST", "/v1/memory/search", {**good, "threshold": rng.choice([2, -3, "high"])}, {}),
        ("POST", "/v1/memory/search", {**good, "text": ""}, {}),
        ("POST", "/v1/memory/search", "{not json", {}),
        ("POST", "/v1/memory/search", json.dumps(good)[: rng.randint(1, 30)], {}),  # truncated
        ("POST", "/v1/memory/search", rng.randbytes(rng.randint(1, 200)), {}),
        ("POST", "/v1/memory/search", {**good, "text": "x" * 30_000}, {}),
        ("POST", "/v1/memory/search", good, {"authorization": "Bearer wrong"}),
        ("POST", "/v1/memory/search", good, {"authorization": ""}),
        ("POST", "/v1/memory/retract", {}, {}),
        ("POST", "/v1/memory/retract", {"annotator_id": ""}, {}),
        ("GET", "/v1/retrieval/weights", None, {}),  # doc_ids missing
        ("GET", "/v1/retrieval/weights?doc_ids=,,,", None, {}),
        ("GET", "/v1/retrieval/weights?doc_ids=" + ",".join(f"d{j}" for j in range(1001)), None, {}),
        ("GET", "/v1/routing/" + "a" * 300, None, {}),
    ]
    return variants[i % len(variants)]


def test_500_malformed_requests_get_4xx_and_the_api_stays_up(
    service_factory, memory_settings, hash_embedder
) -> None:
    svc = service_factory(hash_embedder, settings=memory_settings(embedder="hash"), start=False)
    client = TestClient(create_memory_app(svc.settings, svc), raise_server_exceptions=False)
    auth = {"authorization": "Bearer key-a"}
    rng = random.Random(7)
    statuses: dict[int, int] = {}
    for i in range(500):
        method, path, body, extra = _malformed(rng, i)
        headers = {**auth, **extra}
        if body is None:
            r = client.request(method, path, headers=headers)
        else:
            # json.dumps writes 1e309 as Infinity: not JSON, as a careless client might send it
            raw = json.dumps(body) if isinstance(body, (dict, list)) else body
            r = client.request(
                method, path, content=raw, headers={**headers, "content-type": "application/json"}
            )
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert 400 <= r.status_code < 500, (i, method, path, str(body)[:200], r.status_code, r.text[:300])
    assert set(statuses) >= {401, 422}
    ok = client.post(
        "/v1/memory/search", json={"text": "reset password", "agent_id": "support"}, headers=auth
    )
    assert ok.status_code == 200 and ok.json() == {"results": []}
    assert client.get("/healthz").status_code == 200


def test_cli_search_and_retract_go_through_http(
    service_factory, memory_settings, hash_embedder, tenants
) -> None:
    import socket
    import threading
    import time

    import uvicorn
    from typer.testing import CliRunner

    from hfloop.memory import logic
    from hfloop.memory.cli import app

    svc = service_factory(hash_embedder, settings=memory_settings(embedder="hash"), start=False)
    ta, _ = tenants
    vec = hash_embedder.embed(["reset my password"])[0]
    entry = {"memory_id": "m-cli", "tenant_id": ta, "agent_id": "support", "route": "r", "situation": "reset my password",
             "original_answer": "old", "corrected_answer": "use the link", "annotator_id": "ann-1", "user_id": "ann-1",
             "visibility": "SHARED", "trust": 0.0, "trusted": False, "reason": "t", "source_event_ids": ["f-1"],
             "corroborated_by": []}  # fmt: skip
    svc.store.upsert_entries([(logic.point_id("memory", ta, "m-cli"), vec, vec, entry)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_memory_app(svc.settings, svc), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    try:
        opts = ["--api-url", f"http://127.0.0.1:{port}", "--api-key", "key-a"]
        found = CliRunner().invoke(app, ["search", "reset my password", "--agent", "support", *opts])
        assert found.exit_code == 0, found.output
        assert json.loads(found.output)[0]["memory_id"] == "m-cli"
        gone = CliRunner().invoke(app, ["retract", "--annotator", "ann-1", *opts])
        assert gone.exit_code == 0, gone.output
        assert json.loads(gone.output)["removed_memory_ids"] == ["m-cli"]
        after = CliRunner().invoke(app, ["search", "reset my password", "--agent", "support", *opts])
        assert json.loads(after.output) == []
        denied = CliRunner().invoke(
            app, ["search", "x", "--agent", "support", "--api-url", opts[1], "--api-key", "nope"]
        )
        assert denied.exit_code == 1 and "401" in denied.output
    finally:
        server.should_exit = True
        th.join(timeout=10)
