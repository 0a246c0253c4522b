"""Record builders and polling helpers of the memory wing's tests (imported by the tests)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from hfloop.config import Settings
from hfloop.events.kafka import now_ms
from hfloop.events.serde import default_serde
from waiting import eventually  # noqa: F401  (re-exported to this folder's tests)


def memory_update(tenant: str, situation: str, corrected: str, *, annotator: str = "user-1",
                  agent: str = "support", route: str = "default", memory_id: str | None = None,
                  trust: float = 0.0, op: str = "UPSERT", event_time: int | None = None) -> dict[str, Any]:  # fmt: skip
    """A MemoryUpdate as the stream processor publishes it for a CORRECTION."""
    fid = uuid.uuid4().hex
    return {
        "event_id": uuid.uuid4().hex, "tenant_id": tenant, "event_time": event_time or now_ms(), "op": op,
        "memory_id": memory_id or f"mem-{fid}", "agent_id": agent, "route": route, "situation": situation,
        "original_answer": "the old answer", "corrected_answer": corrected, "annotator_id": annotator,
        "trust": trust, "visibility": "PRIVATE", "reason": "correction", "source_event_ids": [fid],
    }  # fmt: skip


def label(tenant: str, score: float, *, agent: str = "support", route: str = "default", confidence: float = 1.0,
          docs: list[str] | None = None, annotators: list[str] | None = None, interaction_id: str | None = None,
          version: int = 1, event_time: int | None = None, model: str = "m") -> dict[str, Any]:  # fmt: skip
    """A Label as the stream processor publishes it."""
    return {
        "event_id": uuid.uuid4().hex, "tenant_id": tenant, "event_time": event_time or now_ms(),
        "interaction_id": interaction_id or uuid.uuid4().hex, "version": version, "score": score,
        "confidence": confidence, "trigger": "window_closed", "agent_id": agent, "agent_version": "1",
        "model_id": model, "route": route, "session_id": "s", "user_id": "u", "n_explicit": 1, "n_implicit": 0,
        "retrieved_doc_ids": docs or [], "memory_ids_used": [], "annotator_ids": annotators or [],
        "contributing_event_ids": [uuid.uuid4().hex],
    }  # fmt: skip


def read_topic(settings: Settings, topic: str, match: Callable[[dict[str, Any]], bool],
               timeout: float = 10.0) -> list[tuple[dict[str, Any], list[tuple[str, bytes]]]]:  # fmt: skip
    """Every record on ``topic`` (from the start) for which ``match`` holds, with headers."""
    serde = default_serde()
    c = Consumer(settings.consumer_config(f"probe-{uuid.uuid4().hex}"))
    try:
        md = c.list_topics(topic, timeout=10)
        tps = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        c.assign(tps)
        out = []
        pos = {p: 0 for p in ends}
        deadline = time.monotonic() + timeout
        while any(pos[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            pos[m.partition()] = m.offset() + 1
            try:
                _, rec = serde.decode(m.value())
            except Exception:
                continue
            if match(rec):
                out.append((rec, list(m.headers() or [])))
        return out
    finally:
        c.close()
