"""Realistic example records of every schema, for round-trip tests and benchmarks."""

from __future__ import annotations

import uuid
from typing import Any

from hfloop.sdk import events as ev


def _id() -> str:
    return uuid.uuid4().hex


def examples(tenant: str = "acme") -> dict[str, dict[str, Any]]:
    iid = _id()
    now = 1_764_000_000_000
    msgs = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "How do I get a refund?"},
    ]
    return {
        "Interaction": ev.interaction(
            tenant_id=tenant, agent_id="support", prompt=msgs, response="Refunds take 5 days.", interaction_id=iid,
            session_id="s1", user_id="u1", agent_version="1.2.0", model_id="small", route="billing",
            retrieved_doc_ids=["kb-refunds-v2"], memory_ids_used=["m1"], latency_ms=812.5, prompt_tokens=31,
            completion_tokens=9, metadata={"channel": "web"}, trace_id="t-1", event_time=now,
        ),
        "Feedback": ev.feedback(
            tenant_id=tenant, interaction_id=iid, kind="PREFERENCE", annotator_id="ann-1", annotator_pool="experts",
            comparison={"response_a": "A", "response_b": "B", "choice": "B", "strength": 0.8},
            rating={"scale": "STARS5", "value": 4.0}, comment="better", event_time=now,
        ),
        "Outcome": ev.outcome(tenant_id=tenant, interaction_id=iid, kind="CUSTOM", custom_kind="thumbs_emoji",
                              value=0.5, text="🙂 ünïcode", event_time=now),
        "Label": {
            "event_id": _id(), "tenant_id": tenant, "event_time": now, "interaction_id": iid, "version": 2,
            "score": -0.75, "confidence": 0.6, "trigger": "revision", "agent_id": "support", "agent_version": "1",
            "model_id": "small", "route": "billing", "session_id": "s1", "user_id": "u1", "n_explicit": 1,
            "n_implicit": 2, "retrieved_doc_ids": ["d1"], "memory_ids_used": [], "annotator_ids": ["ann-1"],
            "contributing_event_ids": ["e1", "e2"],
        },
        "PreferencePair": {
            "event_id": _id(), "tenant_id": tenant, "event_time": now, "prompt": msgs, "chosen": "good",
            "rejected": "bad", "source": "CORRECTION", "explicit": True, "weight": 1.0, "confidence": 0.9,
            "agent_id": "support", "route": "billing", "annotator_ids": ["ann-1"], "interaction_ids": [iid],
            "source_event_ids": ["e1"],
        },
        "MemoryUpdate": {
            "event_id": _id(), "tenant_id": tenant, "event_time": now, "op": "UPSERT", "memory_id": "m1",
            "agent_id": "support", "route": "billing", "situation": "How do I get a refund?",
            "original_answer": "Refunds take 5 days.", "corrected_answer": "Refunds take 10 days.",
            "annotator_id": "ann-1", "trust": 0.0, "visibility": "PRIVATE", "reason": "correction",
            "source_event_ids": ["e1"],
        },
        "RoutingUpdate": {
            "event_id": _id(), "tenant_id": tenant, "event_time": now, "agent_id": "support", "route": "billing",
            "action": "FALLBACK_MODEL", "target": "large", "bad_rate": 0.61, "alpha": 12.0, "beta": 7.5,
            "evidence": 17.5, "reason": "bad rate above 0.5", "source_event_ids": ["l1"],
        },
        "DocWeightUpdate": {
            "event_id": _id(), "tenant_id": tenant, "event_time": now, "doc_id": "kb-refunds-v1", "weight": 0.3,
            "bad_share": 0.7, "n": 20.0, "reason": "bad share up", "source_event_ids": ["l1"],
        },
        "TrainingRun": {
            "event_id": _id(), "tenant_id": tenant, "event_time": now, "run_id": "r1", "kind": "DPO",
            "status": "REFUSED_EVAL", "base_model": "tiny", "window_start": now - 7 * 86_400_000, "window_end": now,
            "offsets": [{"topic": "hfloop.preferences", "partition": 0, "start_offset": 0, "end_offset": 10}],
            "gate_report": "{}", "metrics": {"acc": 0.8}, "audits": [{"name": "length_drift", "passed": False,
            "detail": "+40%"}], "artifact_path": None, "promoted": False, "model_version": None,
        },
        "DeadLetter": {
            "event_id": _id(), "tenant_id": tenant, "event_time": now, "reason": "bad_magic", "error": "x",
            "origin_topic": "hfloop.feedback", "origin_partition": 1, "origin_offset": 42, "processor": "stream",
            "key": b"k", "payload": b"\xff\x00garbage",
        },
    }  # fmt: skip
