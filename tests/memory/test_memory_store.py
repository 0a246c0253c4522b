"""The embedded store's in-memory mirror answers exactly what Qdrant's filtered query answers,
after upserts, payload changes, deletes and a reopen of the folder."""

from __future__ import annotations

import random

import numpy as np
from qdrant_client import models

from hfloop.memory import logic
from hfloop.memory.store import MemoryStore


def _qdrant(store: MemoryStore, tenant: str, agent: str, vec: np.ndarray, k: int, thr: float,
            user: str | None, route: str | None) -> list[str]:  # fmt: skip
    """The same search done by Qdrant itself (payload filter), bypassing the mirror."""
    must = [models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant)),
            models.FieldCondition(key="agent_id", match=models.MatchValue(value=agent))]  # fmt: skip
    if route:
        must.append(models.FieldCondition(key="route", match=models.MatchValue(value=route)))
    should = [models.FieldCondition(key="visibility", match=models.MatchValue(value="SHARED"))]
    if user:
        should.append(models.FieldCondition(key="annotator_id", match=models.MatchValue(value=user)))
    res = store.client.query_points(store.memory, query=vec.tolist(), using="situation", limit=k,
                                    query_filter=models.Filter(must=must, should=should), score_threshold=thr)  # fmt: skip
    return [str(p.id) for p in res.points]


def test_mirror_matches_qdrant(settings_factory) -> None:
    rng = np.random.default_rng(0)
    pick = random.Random(0)
    settings = settings_factory(embedder="hash")
    store = MemoryStore(settings, "test-space", 16)
    entries = []
    for i in range(300):
        v = rng.standard_normal(16).astype(np.float32)
        p = {"memory_id": f"m{i}", "tenant_id": pick.choice(["t1", "t2"]), "agent_id": pick.choice(["a", "b"]),
             "route": pick.choice(["r1", "r2"]), "annotator_id": f"u{i % 7}",
             "visibility": pick.choice(["SHARED", "PRIVATE"])}  # fmt: skip
        entries.append((logic.point_id("memory", p["tenant_id"], p["memory_id"]), v, v, p))
    store.upsert_entries(entries)
    for pid, *_ in entries[:40]:
        store.set_entry_payload(pid, {"visibility": "SHARED"})
    store.delete_entries([pid for pid, *_ in entries[40:80]])

    def compare(s: MemoryStore) -> int:
        checked = 0
        for _ in range(60):
            q = rng.standard_normal(16).astype(np.float32)
            args = (pick.choice(["t1", "t2", "t3"]), pick.choice(["a", "b"]), q, pick.choice([1, 5, 50]),
                    pick.choice([-1.0, 0.0, 0.3]), pick.choice([None, "u1", "u3"]), pick.choice([None, "r2"]))  # fmt: skip
            mirror = [h.id for h in s.search(*args)]
            assert mirror == _qdrant(s, *args)
            checked += len(mirror)
        return checked

    assert compare(store) > 100  # the comparison saw real results, not only empty lists
    store.close()
    reopened = MemoryStore(settings, "test-space", 16)  # the mirror is rebuilt from the folder
    assert reopened.mirror is not None and len(reopened.mirror) == 260
    assert compare(reopened) > 100
    reopened.close()


def _qdrant_groups(store: MemoryStore, tenant: str, agent: str, vec: np.ndarray, groups: int, size: int,
                   thr: float) -> list[str]:  # fmt: skip
    """Qdrant's own grouped query (by annotator), bypassing the mirror, flattened best first."""
    must = [models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant)),
            models.FieldCondition(key="agent_id", match=models.MatchValue(value=agent))]  # fmt: skip
    res = store.client.query_points_groups(store.memory, group_by="annotator_id", query=vec.tolist(),
                                           using="situation", query_filter=models.Filter(must=must), limit=groups,
                                           group_size=size, score_threshold=thr)  # fmt: skip
    hits = [p for g in res.groups for p in g.hits]
    return [str(p.id) for p in sorted(hits, key=lambda p: -p.score)]


def test_grouped_neighbours_match_qdrant_and_survive_a_flood(settings_factory) -> None:
    rng = np.random.default_rng(1)
    pick = random.Random(1)
    store = MemoryStore(settings_factory(embedder="hash"), "test-space", 16)
    base = rng.standard_normal(16).astype(np.float32)
    entries = []
    for i in range(400):
        # A quarter of the entries are one author's near-copies of one situation: a flood.
        flood = i % 4 == 0
        v = base + (0.05 if flood else 0.8) * rng.standard_normal(16).astype(np.float32)
        p = {"memory_id": f"m{i}", "tenant_id": pick.choice(["t1", "t2"]), "agent_id": "a",
             "annotator_id": "mallory" if flood else f"u{i % 9}", "visibility": "PRIVATE"}  # fmt: skip
        entries.append((logic.point_id("memory", p["tenant_id"], p["memory_id"]), v, v, p))
    store.upsert_entries(entries)
    store.delete_entries([pid for pid, *_ in entries[:20]])
    checked = 0
    for _ in range(40):
        q = base + pick.choice([0.0, 0.5, 2.0]) * rng.standard_normal(16).astype(np.float32)
        args = (pick.choice(["t1", "t2", "t3"]), "a", q, pick.choice([1, 3, 32]), pick.choice([1, 4]),
                pick.choice([-1.0, 0.3, 0.8]))  # fmt: skip
        mirror = [h.id for h in store.neighbours(*args)]
        assert mirror == _qdrant_groups(store, *args)
        checked += len(mirror)
    assert checked > 100
    # The flood is nearest to the query, yet every other annotator still gets a place in the window.
    near = store.neighbours("t1", "a", base, 32, 4, -1.0)
    by_author = [h.payload["annotator_id"] for h in near]
    assert by_author[:4] == ["mallory"] * 4 and by_author.count("mallory") == 4
    assert set(by_author) == {"mallory", *(f"u{i}" for i in range(9))}
    store.close()
