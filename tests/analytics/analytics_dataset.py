"""A small hand-made history whose query answers were computed by hand (see the tests)."""

from __future__ import annotations

from typing import Any

from hfloop.analytics import synth
from hfloop.analytics.batch import Batch
from hfloop.analytics.sink import ClickHouseWriter
from hfloop.events.serde import Serde
from hfloop.events.topics import RECORD_TOPIC

D1 = synth.BASE_MS  # 2026-01-01
D2 = D1 + 86_400_000
H = 3_600_000

RESPONSES = {
    "i1": "ok",  # 2 chars
    "i2": "x" * 600,
    "i3": "I am sure: " + "y" * 489,  # 500 chars, confident
    "i4": "definitely yes",  # 14 chars, confident
    "i5": "z" * 250,
}


def build(tenant: str) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    n = 0

    def add(name: str, rec: dict[str, Any], t: int) -> None:
        nonlocal n
        n += 1
        base = synth.record(name, 0, tenant)
        base.update(rec)
        base["event_id"] = f"{tenant}-{name}-{n}"
        base["event_time"] = t
        out.append((name, base))

    inter = {  # id: (agent, version, model, route, time, memory)
        "i1": ("A", "v1", "m-1", "billing", D1 + 1 * H, []),
        "i2": ("A", "v1", "m-1", "billing", D1 + 2 * H, []),
        "i3": ("A", "v2", "m-2", "billing", D2 + 1 * H, ["m1"]),
        "i4": ("B", "v1", "m-1", "tech", D1 + 3 * H, ["m2"]),
        "i5": ("B", "v1", "m-1", "tech", D2 + 2 * H, []),
    }
    for iid, (agent, ver, model, route, t, mem) in inter.items():
        add("Interaction", {"interaction_id": iid, "agent_id": agent, "agent_version": ver, "model_id": model,
                            "route": route, "response": RESPONSES[iid], "memory_ids_used": mem}, t)  # fmt: skip

    def rate(iid: str, who: str, pool: str | None, scale: str, value: float, dt: int = 60_000,
             source: str = "EXPLICIT") -> None:  # fmt: skip
        add("Feedback", {"interaction_id": iid, "kind": "RATING", "source": source, "annotator_id": who,
                         "annotator_pool": pool, "rating": {"scale": scale, "value": value}}, inter[iid][4] + dt)  # fmt: skip

    for iid, v in zip(["i1", "i2", "i3", "i4", "i5"], [1, 1, -1, 1, -1], strict=True):
        rate(iid, "a1", "vendor-a", "THUMBS", v, dt=120_000)
    rate("i2", "a1", "vendor-a", "THUMBS", -1, dt=30_000)  # earlier: superseded by the later +1
    for iid, v in zip(["i1", "i2", "i3", "i4", "i5"], [1, -1, -1, 1, 1], strict=True):
        rate(iid, "a2", "vendor-a", "THUMBS", v)
    for who in ("e1", "e2"):
        rate("i1", who, "experts", "STARS5", 5)
        rate("i2", who, "experts", "STARS5", 2)
    rate("i3", "judge", None, "THUMBS", 1, source="IMPLICIT")
    for iid, v in zip(["i1", "i2", "i3", "i4", "i5"], [-1, 1, 1, 1, -1], strict=True):
        rate(iid, "c1", "crowd", "THUMBS", v)
    add("Feedback", {"interaction_id": "i2", "kind": "CORRECTION", "annotator_id": "a1", "rating": None,
                     "correction": "the right answer"}, D1 + 2 * H + 5000)  # fmt: skip
    add("Feedback", {"interaction_id": "i4", "kind": "COMMENT", "annotator_id": "a1", "rating": None,
                     "comment": "fine"}, D1 + 3 * H + 5000)  # fmt: skip

    for iid, kind in [("i1", "ACCEPTED"), ("i2", "REPHRASED"), ("i2", "ESCALATED"), ("i3", "COPIED"),
                      ("i4", "ESCALATED"), ("i5", "REPHRASED")]:  # fmt: skip
        add("Outcome", {"interaction_id": iid, "kind": kind}, inter[iid][4] + 10_000)

    for iid, ver, score, conf in [("i1", 1, 0.8, 0.9), ("i2", 1, 0.5, 0.9), ("i2", 2, -0.6, 0.7),
                                  ("i3", 1, -0.9, 0.8), ("i4", 1, 0.1, 0.5), ("i5", 1, -0.4, 0.6)]:  # fmt: skip
        agent, _v, _m, route, t, mem = inter[iid]
        add("Label", {"interaction_id": iid, "version": ver, "score": score, "confidence": conf, "agent_id": agent,
                      "route": route, "memory_ids_used": mem}, t + 600_000 * ver)  # fmt: skip

    for action, bad, t in [
        ("HUMAN", 0.4, D1 + H),
        ("DEFAULT", 0.1, D1 + 5 * H),
        ("FALLBACK_MODEL", 0.35, D2 + H),
    ]:
        add("RoutingUpdate", {"agent_id": "A", "route": "billing", "action": action, "bad_rate": bad}, t)
    for doc, w, t in [
        ("doc1", 0.5, D1 + H),
        ("doc2", 1.0, D1 + 2 * H),
        ("doc1", 0.25, D1 + 3 * H),
        ("doc3", 0.8, D2 + H),
    ]:
        add("DocWeightUpdate", {"doc_id": doc, "weight": w}, t)

    def pair(prompt: str, chosen: str, explicit: bool, conf: float, weight: float, t: int) -> None:
        add("PreferencePair", {"prompt": [{"role": "user", "content": prompt}], "chosen": chosen, "rejected": "bad",
                               "explicit": explicit, "confidence": conf, "weight": weight}, t)  # fmt: skip

    pair("X", "c1", True, 0.9, 1.0, D1 + H)
    pair("X", "c1", True, 0.9, 1.0, D1 + 2 * H)  # same content: one unique pair
    pair("Y", "c2", False, 0.5, 0.5, D1 + 3 * H)
    pair("Z", "c3", True, 0.8, 1.0, D2 + H)
    add("TrainingRun", {"window_start": D1, "window_end": D1 + 12 * H}, D1 + 13 * H)
    add("MemoryUpdate", {}, D1)
    add("DeadLetter", {}, D1)
    return out


def load(client: Any, tenant: str, database: str = "hfloop", reverse: bool = False) -> int:
    """Write the dataset through the sink's own write path (Avro containers), no Kafka.

    ``reverse``: the same events in the opposite order, i.e. a replay that forms other blocks
    (so insert deduplication does not drop it: only the event_id rule can)."""
    serde = Serde()
    batch = Batch(serde)
    records = build(tenant)[:: -1 if reverse else 1]
    for offset, (name, rec) in enumerate(records):
        batch.add(RECORD_TOPIC[name], 0, offset, None, serde.encode(name, rec))
    assert not batch.dead, batch.dead
    ClickHouseWriter(client, database).write(batch)
    return len(records)
