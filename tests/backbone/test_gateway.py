"""HTTP gateway on the real broker: valid batches land, 200 malformed requests get the right 4xx."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from kafkautil import consume_all, end_offsets

from hfloop.events.kafka import create_topics
from hfloop.events.serde import Serde
from hfloop.gateway.app import build_app

INPUTS = ["hfloop.interactions", "hfloop.feedback", "hfloop.outcomes"]


@pytest.fixture
def gw(settings_factory):
    settings = settings_factory(
        api_keys="key-a:tenant-a,key-b:tenant-b", max_body_bytes=200_000, max_batch=100
    )
    create_topics(settings)
    with TestClient(build_app(settings)) as client:
        yield client, settings


A = {"Authorization": "Bearer key-a"}


def _interaction(**over):
    ev = {"type": "interaction", "interaction_id": "i-1", "agent_id": "support", "user_id": "u1",
          "messages": [{"role": "user", "content": "How do I get a refund?"}], "response": "In 5 days.",
          "route": "billing", "model_id": "small", "agent_version": "1"}  # fmt: skip
    ev.update(over)
    return ev


def test_valid_batch_is_acknowledged_and_on_the_topics(gw, unique):
    client, settings = gw
    iid = unique("i")
    batch = [
        _interaction(interaction_id=iid, event_time="2026-11-26T10:00:00Z"),
        {"type": "feedback", "interaction_id": iid, "kind": "RATING", "annotator_id": "u1",
         "rating": {"scale": "THUMBS", "value": -1}},
        {"type": "feedback", "interaction_id": iid, "kind": "CORRECTION", "annotator_id": "u1",
         "correction": "In 10 days."},
        {"type": "outcome", "interaction_id": iid, "kind": "ESCALATED", "event_time": 1764151200000},
    ]  # fmt: skip
    r = client.post("/v1/events", json={"events": batch}, headers=A)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 4 and len(set(body["event_ids"])) == 4
    got = consume_all(settings, INPUTS, Serde(), expect=4, group=unique("g"),
                      predicate=lambda rec: rec["interaction_id"] == iid)  # fmt: skip
    assert {rec["event_id"] for _, rec in got} == set(body["event_ids"])
    assert all(rec["tenant_id"] == "tenant-a" for _, rec in got)
    inter = next(rec for name, rec in got if name == "Interaction")
    assert inter["event_time"] == 1795687200000 and inter["session_id"] == iid
    # a single event (not a batch) and a bare JSON array work too
    assert (
        client.post("/v1/events", json=_interaction(interaction_id=unique("i")), headers=A).status_code == 200
    )
    assert (
        client.post("/v1/events", json=[_interaction(interaction_id=unique("i"))], headers=A).status_code
        == 200
    )


def test_client_supplied_event_id_is_kept_for_idempotent_retries(gw, unique):
    client, settings = gw
    eid = unique("e")
    for _ in range(2):
        r = client.post("/v1/events", json=_interaction(event_id=eid, interaction_id=eid), headers=A)
        assert r.json()["event_ids"] == [eid]


def _malformed() -> list[tuple[str, dict, object, int, str]]:
    """(case, headers, body, expected status, text the error must contain)."""
    cases: list[tuple[str, dict, object, int, str]] = []
    wrong_types = {
        "agent_id": 5, "response": ["x"], "messages": "hi", "latency_ms": "slow", "prompt_tokens": 1.5,
        "retrieved_doc_ids": "kb-1", "metadata": {"a": 1}, "user_id": None, "route": {"x": 1},
        "memory_ids_used": [1, 2], "completion_tokens": "9", "model_id": True, "interaction_id": 7,
        "event_time": "yesterday", "agent_version": 1.0, "trace_id": 3,
    }  # fmt: skip
    for field, value in wrong_types.items():
        for variant in range(3):
            body = _interaction(**{field: value})
            if variant == 1:
                body = {"events": [_interaction(), body]}
            elif variant == 2:
                body = [body]
            cases.append((f"type:{field}:{variant}", A, body, 422, field))
    required = [
        "agent_id",
        "messages",
        "response",
        "interaction_id",
        "user_id",
        "route",
        "model_id",
        "agent_version",
    ]
    for field in required:
        for variant in range(3):
            body = _interaction()
            body.pop(field)
            if variant:
                body = {"events": [body]} if variant == 1 else [_interaction(), body]
            cases.append((f"missing:{field}:{variant}", A, body, 422, field))
    fb = {
        "type": "feedback",
        "interaction_id": "i",
        "kind": "RATING",
        "annotator_id": "a",
        "rating": {"scale": "THUMBS", "value": 1},
    }
    oc = {"type": "outcome", "interaction_id": "i", "kind": "EDITED"}
    bad_fields = [(fb, "annotator_id", 5), (fb, "interaction_id", []), (fb, "rating", {"scale": "THUMBS", "value": "x"}),
                  (fb, "correction", 5), (fb, "source", "MAYBE"), (fb, "annotator_pool", 1), (oc, "value", "x"),
                  (oc, "text", 5), (oc, "user_id", 5), (oc, "custom_kind", 5), (oc, "session_id", 1)]  # fmt: skip
    for base, field, value in bad_fields:
        for variant in range(3):
            body = {**base, field: value}
            needle = "value" if field == "rating" else field
            cases.append((f"type:{body['type']}.{field}:{variant}", A, [body] * (variant + 1), 422, needle))
    for field in ["interaction_id", "kind", "annotator_id"]:
        for variant in range(3):
            body = {k: v for k, v in fb.items() if k != field}
            cases.append((f"missing:feedback.{field}:{variant}", A, [fb] * variant + [body], 422, field))
    for kind in ["LIKE", "rating", "", "THUMBS", None, 3]:
        cases.append((f"feedback-kind:{kind}", A, {"type": "feedback", "interaction_id": "i", "kind": kind,
                                                  "annotator_id": "a"}, 422, "kind"))  # fmt: skip
    for kind in ["LIKED", "", None, 5, "bought"]:
        cases.append(
            (f"outcome-kind:{kind}", A, {"type": "outcome", "interaction_id": "i", "kind": kind}, 422, "kind")
        )
    for typ in ["interactions", "label", "", None, 7, "Feedback"]:
        cases.append((f"event-type:{typ}", A, {**_interaction(), "type": typ}, 422, "type"))
    for scale in ["TEN", "", 1]:
        cases.append((f"rating-scale:{scale}", A, {"type": "feedback", "interaction_id": "i", "kind": "RATING",
                      "annotator_id": "a", "rating": {"scale": scale, "value": 1}}, 422, "scale"))  # fmt: skip
    cases.append(("comparison-choice", A, {"type": "feedback", "interaction_id": "i", "kind": "PREFERENCE",
                  "annotator_id": "a", "comparison": {"response_a": "x", "response_b": "y", "choice": "C"}}, 422, "choice"))  # fmt: skip
    for i, extra in enumerate(["surprise", "Tenant", "eventId", "score"]):
        cases.append((f"unknown-field:{i}", A, _interaction(**{extra: 1}), 422, extra))
    cases.append(("tenant-mismatch", A, _interaction(tenant_id="tenant-b"), 422, "tenant_id"))
    cases.append(("negative-time", A, _interaction(event_time=-5), 422, "event_time"))
    cases.append(("year-10000", A, _interaction(event_time=253_402_300_800_000), 422, "event_time"))
    cases.append(("iso-year-0001", A, _interaction(event_time="0001-01-01T00:00:00Z"), 422, "event_time"))
    cases.append(("empty-interaction-id", A, _interaction(interaction_id="  "), 422, "interaction_id"))
    cases.append(("huge-string", A, _interaction(response="x" * 200_001), 413, "larger"))
    deep: object = "x"
    for _ in range(20):
        deep = {"k": deep}
    cases.append(("deep-nesting", A, _interaction(metadata=deep), 422, "nested"))
    for i, body in enumerate([1, "x", None, True, [1], [None], {"events": "x"}, {"events": [1]},
                              {"events": [], "x": 1}]):  # fmt: skip
        cases.append((f"not-an-object:{i}", A, body, 422, "event"))
    cases.append(("empty-batch", A, {"events": []}, 422, "empty"))
    cases.append(("empty-array", A, [], 422, "empty"))
    cases.append(("batch-too-large", A, [_interaction()] * 101, 413, "limit"))
    for i, raw in enumerate([b"{", b"not json", b"{'a': 1}", b"\xff\xfe\x00", b"[1,", b"", b'{"type": "interaction",}',
                             b"nul", b"\xc3\x28", b'{"a": NaN'] * 3):  # fmt: skip
        cases.append((f"invalid-json:{i}", A, raw, 400, "JSON"))
    for i, headers in enumerate([{}, {"Authorization": "Bearer nope"}, {"Authorization": "key-a"},
                                 {"Authorization": "Basic a2V5LWE="}, {"Authorization": "Bearer "},
                                 {"Authorization": "Bearer key-a2"}, {"Authorization": "bearer key-"}] * 2):  # fmt: skip
        cases.append((f"auth:{i}", headers, _interaction(), 401, "key"))
    cases.append(("oversize", A, b"[" + b" " * 250_000 + b"]", 413, "larger"))
    return cases


def test_two_hundred_malformed_requests_get_the_right_4xx_and_nothing_reaches_kafka(gw):
    client, settings = gw
    cases = _malformed()
    assert len(cases) >= 200
    before = {t: end_offsets(settings, t) for t in INPUTS}
    failures = []
    for name, headers, body, status, needle in cases:
        if isinstance(body, bytes):
            r = client.post(
                "/v1/events", content=body, headers={**headers, "content-type": "application/json"}
            )
        else:
            r = client.post(
                "/v1/events",
                content=json.dumps(body),
                headers={**headers, "content-type": "application/json"},
            )
        detail = (
            r.json().get("detail", "")
            if r.headers.get("content-type", "").startswith("application/json")
            else r.text
        )
        if r.status_code != status or needle.lower() not in json.dumps(detail).lower():
            failures.append((name, r.status_code, str(detail)[:160]))
    assert not failures, failures[:10]
    assert {t: end_offsets(settings, t) for t in INPUTS} == before


def test_health_metrics_and_docs(gw):
    client, _ = gw
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/metrics").status_code == 401
    client.post("/v1/events", content=b"{", headers=A)
    m = client.get("/metrics", headers=A)
    assert m.status_code == 200 and 'hfloop_gateway_rejected_total{reason="invalid_json"}' in m.text
    assert "/v1/events" in client.get("/openapi.json").json()["paths"]
