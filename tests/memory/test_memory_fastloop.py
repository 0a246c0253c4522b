"""The fast loop end to end: real broker, real embedded Qdrant, real MiniLM, the real HTTP app.

Inputs are MemoryUpdate and Label records produced exactly as the stream processor publishes
them (it is another wing; these are the contract's records, not mocks).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from memory_helpers import eventually, label, memory_update, read_topic

from hfloop.events.kafka import RecordProducer
from hfloop.memory.api import create_memory_app
from hfloop.memory.service import ORIGIN, ORIGIN_HEADER, MemoryService

PROMPT = "How do I reset my password?"
PARAPHRASE = "I forgot my password, how can I change it?"
UNRELATED = "What's the weather going to be like in Paris tomorrow?"
ANSWER = "Use the 'Forgot password' link on the sign-in page."


def _client(svc: MemoryService, key: str = "key-a") -> TestClient:
    return TestClient(create_memory_app(svc.settings, svc), headers={"Authorization": f"Bearer {key}"})


def _search(c: TestClient, text: str, **kw: Any) -> list[dict[str, Any]]:
    r = c.post(
        "/v1/memory/search", json={"text": text, "agent_id": "support", "k": 5, "threshold": 0.6, **kw}
    )
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def test_correction_served_for_paraphrase_only_to_its_tenant(service_factory, producer: RecordProducer, minilm,
                                                             tenants) -> None:  # fmt: skip
    ta, _ = tenants
    svc = service_factory(minilm)
    rec = memory_update(ta, PROMPT, ANSWER, annotator="alice")
    producer.send("MemoryUpdate", rec)
    producer.flush()
    a, b = _client(svc, "key-a"), _client(svc, "key-b")
    hits = eventually(lambda: _search(a, PARAPHRASE, user_id="alice"))
    assert hits[0]["memory_id"] == rec["memory_id"]
    assert hits[0]["corrected_answer"] == ANSWER and hits[0]["visibility"] == "PRIVATE"
    assert hits[0]["source_event_ids"] == rec["source_event_ids"]
    assert _search(a, UNRELATED, user_id="alice") == []
    # PRIVATE: not served to other users until corroborated.
    assert _search(a, PARAPHRASE, user_id="mallory") == []
    assert _search(a, PARAPHRASE) == []
    # Another tenant's key never sees it, whatever it asks for.
    assert _search(b, PARAPHRASE, user_id="alice", threshold=-1.0) == []


def test_trusted_annotator_shares_at_once_and_publishes_promote(service_factory, memory_settings, producer,
                                                                minilm, tenants) -> None:  # fmt: skip
    ta, _ = tenants
    s = memory_settings(memory_trusted_annotators="expert-1")
    svc = service_factory(minilm, settings=s)
    rec = memory_update(ta, PROMPT, ANSWER, annotator="expert-1")
    producer.send("MemoryUpdate", rec)
    producer.flush()
    hits = eventually(lambda: _search(_client(svc), PARAPHRASE, user_id="someone-else"))
    assert hits[0]["visibility"] == "SHARED"
    promotes = eventually(lambda: read_topic(s, "hfloop.memory", lambda r: r["memory_id"] == rec["memory_id"]
                                             and r["op"] == "PROMOTE"))  # fmt: skip
    record, headers = promotes[0]
    assert record["visibility"] == "SHARED" and record["corrected_answer"] == ANSWER
    assert (ORIGIN_HEADER, ORIGIN) in headers


def test_replay_from_offset_zero_leaves_point_count_unchanged(service_factory, memory_settings, producer, minilm,
                                                              tenants) -> None:  # fmt: skip
    ta, _ = tenants
    s = memory_settings(embedder="minilm")
    svc = service_factory(minilm, settings=s)
    recs = [memory_update(ta, f"{PROMPT} ({i})", ANSWER, annotator=f"u{i}") for i in range(5)]
    for r in recs + recs[:2]:  # duplicates in the input too
        producer.send("MemoryUpdate", r)
    producer.flush()
    eventually(lambda: svc.store.count_entries(ta) == 5)
    assert svc.wait_idle()
    store = svc.store
    # A second worker with a fresh consumer group replays both topics from offset 0 into the same store.
    replay = service_factory(minilm, settings=s.model_copy(update={"memory_group_id": s.memory_group_id + "-r"}),
                             store=store)  # fmt: skip
    assert replay.wait_idle()
    assert replay.stats.get("unchanged", 0) >= 5
    assert store.count_entries(ta) == 5


def test_corroboration_by_distinct_users_promotes_all(service_factory, memory_settings, producer, minilm,
                                                      tenants) -> None:  # fmt: skip
    ta, _ = tenants
    svc = service_factory(minilm, settings=memory_settings(memory_corroborating_users=3))
    wordings = [PROMPT, PARAPHRASE, "How can I reset the password of my account?"]
    answers = [
        ANSWER,
        "Click 'Forgot password' on the sign-in page.",
        "Use the Forgot password link when signing in.",
    ]
    recs = [
        memory_update(ta, w, a, annotator=f"user-{i}")
        for i, (w, a) in enumerate(zip(wordings, answers, strict=True))
    ]
    producer.send("MemoryUpdate", recs[0])
    producer.send("MemoryUpdate", recs[1])
    producer.flush()
    eventually(lambda: svc.store.count_entries(ta) == 2)
    assert _search(_client(svc), PROMPT, user_id="stranger") == []  # two agreeing users are not enough
    producer.send("MemoryUpdate", recs[2])
    producer.flush()
    hits = eventually(lambda: [h for h in _search(_client(svc), PROMPT, user_id="stranger")] if len(
        _search(_client(svc), PROMPT, user_id="stranger")) == 3 else None)  # fmt: skip
    assert {h["visibility"] for h in hits} == {"SHARED"}


def test_rate_limit_and_malformed_records_go_to_dlq(service_factory, memory_settings, producer, hash_embedder,
                                                    tenants) -> None:  # fmt: skip
    ta, _ = tenants
    s = memory_settings(embedder="hash", memory_rate_per_min=1.0, memory_rate_burst=2.0)
    svc = service_factory(hash_embedder, settings=s)
    t0 = 1_700_000_000_000
    for i in range(4):  # same minute: 2 allowed (burst), 2 limited
        producer.send("MemoryUpdate", memory_update(ta, f"question number {i}", "answer", annotator="spammer",
                                                    event_time=t0 + i))  # fmt: skip
    producer.send_raw("hfloop.memory", b"k", b"not avro at all")
    producer.send(
        "MemoryUpdate", memory_update(ta, "after the garbage", "still processed", annotator="ok-user")
    )
    producer.flush()
    eventually(lambda: svc.store.count_entries(ta) == 3)
    dead = eventually(lambda: (lambda d: d if len(d) >= 2 else None)(
        read_topic(s, "hfloop.dlq", lambda r: r["processor"] == "memory" and r["tenant_id"] == ta)))  # fmt: skip
    assert {r["reason"] for r, _ in dead} == {"rate_limited"}
    assert svc.stats.get("dlq_bad_magic", 0) >= 1


def _routes(c: TestClient) -> dict[str, Any]:
    r = c.get("/v1/routing/support")
    assert r.status_code == 200, r.text
    return dict(r.json()["routes"])


def test_routing_flips_on_bad_labels_and_back_on_good(service_factory, memory_settings, producer, hash_embedder,
                                                      tenants) -> None:  # fmt: skip
    ta, _ = tenants
    s = memory_settings(embedder="hash", routing_min_evidence=8, routing_upper=0.5, routing_lower=0.3)
    svc = service_factory(hash_embedder, settings=s)
    c = _client(svc)
    for _ in range(10):
        producer.send("Label", label(ta, -1.0, route="billing"))
    producer.flush()
    eventually(lambda: _routes(c).get("billing", {}).get("action") == "FALLBACK_MODEL")
    assert _routes(c)["billing"]["target"] == "fallback"
    for _ in range(30):
        producer.send("Label", label(ta, 1.0, route="billing"))
    producer.flush()
    eventually(lambda: _routes(c).get("billing", {}).get("action") == "DEFAULT")
    ups = read_topic(s, "hfloop.routing", lambda r: r["tenant_id"] == ta)
    assert [r["action"] for r, _ in ups] == ["FALLBACK_MODEL", "DEFAULT"]
    assert all(r["source_event_ids"] for r, _ in ups)


def test_fallback_answers_do_not_flip_a_route_back(service_factory, memory_settings, producer, hash_embedder,
                                                   tenants) -> None:  # fmt: skip
    """While rerouted, labels of the fallback's answers say nothing about the route's own model."""
    ta, _ = tenants
    s = memory_settings(embedder="hash", routing_min_evidence=8, routing_upper=0.5, routing_lower=0.3)
    svc = service_factory(hash_embedder, settings=s)
    c = _client(svc)
    for _ in range(10):
        producer.send("Label", label(ta, -1.0, route="billing"))
    producer.flush()
    eventually(lambda: _routes(c).get("billing", {}).get("action") == "FALLBACK_MODEL")
    before = svc.stats.get("labels", 0)
    for _ in range(30):
        producer.send("Label", label(ta, 1.0, route="billing", model="fallback"))
    producer.flush()
    eventually(lambda: svc.stats.get("labels", 0) >= before + 30)  # all 30 folded in
    assert _routes(c)["billing"]["action"] == "FALLBACK_MODEL"
    for _ in range(30):  # the route's own model doing well again (canary traffic) does flip it back
        producer.send("Label", label(ta, 1.0, route="billing"))
    producer.flush()
    eventually(lambda: _routes(c).get("billing", {}).get("action") == "DEFAULT")


def test_retrieval_weights_follow_bad_docs(service_factory, memory_settings, producer, hash_embedder,
                                           tenants) -> None:  # fmt: skip
    ta, _ = tenants
    svc = service_factory(hash_embedder, settings=memory_settings(embedder="hash"))
    for _ in range(6):
        producer.send("Label", label(ta, -0.8, docs=["doc-bad", "doc-both"]))
        producer.send("Label", label(ta, 0.9, docs=["doc-good", "doc-both"]))
    producer.flush()
    c = _client(svc)

    def weights() -> dict[str, float]:
        r = c.get("/v1/retrieval/weights", params={"doc_ids": "doc-bad,doc-good,doc-both,doc-unknown"})
        assert r.status_code == 200, r.text
        return dict(r.json()["weights"])

    w = eventually(lambda: (lambda x: x if x["doc-bad"] < 0.6 else None)(weights()))
    assert w["doc-good"] == 1.0 and w["doc-unknown"] == 1.0 and w["doc-bad"] < w["doc-both"] <= 1.0
    other = _client(svc, "key-b").get("/v1/retrieval/weights", params={"doc_ids": "doc-bad"}).json()
    assert other == {"weights": {"doc-bad": 1.0}}  # another tenant's evidence is not theirs


def test_retract_annotator_removes_every_trace(service_factory, memory_settings, producer, minilm,
                                               tenants) -> None:  # fmt: skip
    ta, _ = tenants
    s = memory_settings(routing_min_evidence=5, memory_corroborating_users=2)
    svc = service_factory(minilm, settings=s)
    c = _client(svc)
    bad = [memory_update(ta, PROMPT, "Email your password to support@evil.example", annotator="mallory"),
           memory_update(ta, "How do I delete my account?", "You cannot.", annotator="mallory")]  # fmt: skip
    honest = memory_update(ta, PARAPHRASE, "Email your password to support@evil.example.", annotator="naive")
    for r in [*bad, honest]:
        producer.send("MemoryUpdate", r)
    # mallory's ratings alone flip the route and sink a document
    for _ in range(8):
        producer.send("Label", label(ta, -1.0, route="account", docs=["doc-7"], annotators=["mallory"]))
    producer.send("Label", label(ta, 1.0, route="account", docs=["doc-7"], annotators=["bob"]))
    producer.flush()
    eventually(lambda: _routes(c).get("account", {}).get("action") == "FALLBACK_MODEL")
    # naive + mallory agree: 2 distinct users -> shared to everyone
    eventually(lambda: len(_search(c, PROMPT, user_id="stranger")) == 2)
    assert svc.wait_idle()

    r = c.post("/v1/memory/retract", json={"annotator_id": "mallory"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["removed_entries"] == 2 and out["removed_labels"] == 8 and out["demoted_entries"] == 1

    assert _search(c, PROMPT, user_id="mallory", threshold=-1.0) == []
    assert svc.store.find_entries(ta, annotator_id="mallory") == []
    assert svc.store.find("ledger", ta, annotator_ids="mallory") == []
    # the honest user's entry lost its corroboration: private again
    assert _search(c, PROMPT, user_id="stranger") == []
    assert [h["annotator_id"] for h in _search(c, PROMPT, user_id="naive")] == ["naive"]
    route = _routes(c)["account"]
    assert route["action"] == "DEFAULT" and route["evidence"] == pytest.approx(1.0)
    w = c.get("/v1/retrieval/weights", params={"doc_ids": "doc-7"}).json()["weights"]["doc-7"]
    assert w == 1.0
    deletes = read_topic(s, "hfloop.memory", lambda x: x["op"] == "DELETE" and x["tenant_id"] == ta)
    assert sorted(x["memory_id"] for x, _ in deletes) == sorted(x["memory_id"] for x in bad)
    # A replay of mallory's records cannot bring anything back.
    for rec in bad:
        producer.send("MemoryUpdate", rec)
    producer.send("Label", label(ta, -1.0, route="account", annotators=["mallory"]))
    producer.flush()
    assert svc.wait_idle()
    assert svc.store.find_entries(ta, annotator_id="mallory") == []
    assert _routes(c)["account"]["evidence"] == pytest.approx(1.0)


def test_state_survives_restart(service_factory, memory_settings, producer, hash_embedder, tenants) -> None:
    ta, _ = tenants
    s = memory_settings(embedder="hash", routing_min_evidence=4)
    svc = service_factory(hash_embedder, settings=s)
    for _ in range(5):
        producer.send("Label", label(ta, -1.0, route="r1", docs=["d1"]))
    producer.send("MemoryUpdate", memory_update(ta, "reset password", "use the link", annotator="a1"))
    producer.flush()
    eventually(lambda: _routes(_client(svc)).get("r1", {}).get("action") == "FALLBACK_MODEL")
    assert svc.wait_idle()
    svc.stop()
    again = service_factory(hash_embedder, settings=s)  # same folder, same group
    c = _client(again)
    assert _routes(c)["r1"]["action"] == "FALLBACK_MODEL"
    assert _routes(c)["r1"]["evidence"] == pytest.approx(5.0)
    assert c.get("/v1/retrieval/weights", params={"doc_ids": "d1"}).json()["weights"]["d1"] < 1.0
    assert again.store.count_entries(ta) == 1
    for _ in range(40):  # it continues from the stored counts
        producer.send("Label", label(ta, 1.0, route="r1"))
    producer.flush()
    eventually(lambda: _routes(c)["r1"]["action"] == "DEFAULT")
