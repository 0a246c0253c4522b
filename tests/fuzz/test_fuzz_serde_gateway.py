"""Hostile input at scale: 8,000 malformed records through the serde and 2,500 malformed requests
through the gateway (real broker), with good traffic interleaved: no crash, every bad one rejected
with a reason, every good one accepted, hostile-but-valid text stored as plain data."""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backbone"))
from corpus import HOSTILE_TEXT, good_events, malformed_records, malformed_requests, record_name  # noqa: E402
from kafkautil import consume_all, end_offsets  # noqa: E402

from hfloop.events.kafka import create_topics  # noqa: E402
from hfloop.events.serde import DECODE_REASONS, DecodeError, Serde  # noqa: E402
from hfloop.gateway.app import build_app  # noqa: E402

SERDE = Serde()


def test_eight_thousand_malformed_records_are_each_rejected_with_a_reason():
    rng = random.Random(7)
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    goods = good_events(rng, 500)
    for i, (kind, data) in enumerate(malformed_records(rng, 8000)):
        kinds[kind] += 1
        with pytest.raises(DecodeError) as err:
            SERDE.decode(data)
        assert err.value.reason in DECODE_REASONS and err.value.message
        reasons[err.value.reason] += 1
        if i % 16 == 0:  # good traffic in between decodes unaffected
            rec = goods[i // 16 % len(goods)]
            assert SERDE.decode(SERDE.encode(record_name(rec), rec))[1] == rec
    assert len(kinds) == 11 and min(kinds.values()) > 700
    assert {"truncated", "unknown_schema", "bad_magic", "invalid_body", "empty"} <= set(reasons)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=6),
                    max_leaves=20))  # fmt: skip
def test_arbitrary_json_values_never_crash_strict_encoding(value):
    from hfloop.events.serde import EncodeError

    for name in ("Interaction", "Feedback", "Outcome"):
        try:
            SERDE.encode(name, value, strict=True)
        except EncodeError as exc:
            assert exc.record == name


def test_gateway_rejects_2500_hostile_requests_and_accepts_interleaved_good_ones(settings_factory, unique):
    s = settings_factory(api_keys="k:fuzz-tenant", max_body_bytes=150_000)
    create_topics(s)
    inputs = ["hfloop.interactions", "hfloop.feedback", "hfloop.outcomes"]
    rng = random.Random(11)
    goods = good_events(rng, 100, tenant="fuzz-tenant")
    tag = unique("run")
    for g in goods:
        g["interaction_id"] = f"{tag}-{g['interaction_id']}"
    before = {t: sum(end_offsets(s, t).values()) for t in inputs}
    statuses: Counter[tuple[str, int]] = Counter()
    accepted_ids = []
    with TestClient(build_app(s)) as client:
        for i, (kind, body, status) in enumerate(malformed_requests(rng, 2500)):
            r = client.post("/v1/events", content=body, headers={"Authorization": "Bearer k"})
            assert r.status_code == status, (kind, r.status_code, r.text[:200])
            assert r.json()["detail"]
            statuses[(kind, r.status_code)] += 1
            if i % 25 == 0:
                g = dict(goods[i // 25])
                g.pop("tenant_id")
                g["type"] = record_name(g).lower()
                ok = client.post("/v1/events", json=g, headers={"Authorization": "Bearer k"})
                assert ok.status_code == 200, ok.text
                accepted_ids += ok.json()["event_ids"]
        assert client.get("/healthz").status_code == 200
    after = {t: sum(end_offsets(s, t).values()) for t in inputs}
    assert sum(after.values()) - sum(before.values()) == len(accepted_ids) == 100
    got = consume_all(s, inputs, Serde(), expect=100, group=unique("g"),
                      predicate=lambda rec: rec["interaction_id"].startswith(tag))  # fmt: skip
    assert {r["event_id"] for _, r in got} == set(accepted_ids)
    texts = {
        r.get("correction") or r.get("text") or r.get("messages", [{}])[-1].get("content") for _, r in got
    }
    assert texts & set(HOSTILE_TEXT), "hostile-but-valid text is stored verbatim as data"
