"""Deterministic synthetic records of every kind (tests, benchmarks, smoke runs).

``record(name, i)`` builds the i-th record of Avro record ``name``; the same ``(name, i,
tenant)`` always gives the same record, event id included, so a re-production is a replay.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _id(*parts: object) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, "synth/" + "/".join(map(str, parts))).hex


def _common(name: str, i: int, tenant: str) -> dict[str, Any]:
    return {"event_id": _id(tenant, name, i), "tenant_id": tenant, "event_time": BASE_MS + i * 1000}


def interaction(i: int, tenant: str) -> dict[str, Any]:
    iid = _id(tenant, "interaction", i)
    return {
        **_common("Interaction", i, tenant),
        "interaction_id": iid,
        "session_id": _id(tenant, "session", i // 3),
        "user_id": f"user-{i % 50}",
        "agent_id": f"agent-{i % 3}",
        "agent_version": f"v{1 + i % 2}",
        "model_id": "tiny-1",
        "route": ("billing", "tech", "account")[i % 3],
        "messages": [{"role": "user", "content": f"question number {i}"}],
        "response": f"answer {i}",
        "retrieved_doc_ids": [f"doc-{i % 7}"],
        "memory_ids_used": [f"mem-{i % 5}"] if i % 4 == 0 else [],
        "latency_ms": 12.5,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "metadata": {"i": str(i)},
        "trace_id": None,
        "parent_interaction_id": None,
    }


def feedback(i: int, tenant: str) -> dict[str, Any]:
    return {
        **_common("Feedback", i, tenant),
        "interaction_id": _id(tenant, "interaction", i),
        "kind": "RATING",
        "source": "EXPLICIT",
        "annotator_id": f"ann-{i % 4}",
        "annotator_pool": "vendor-a",
        "session_id": None,
        "rating": {"scale": "THUMBS", "value": 1.0 if i % 3 else -1.0},
        "correction": None,
        "comparison": None,
        "demonstration": None,
        "comment": None,
        "metadata": {},
    }


def outcome(i: int, tenant: str) -> dict[str, Any]:
    return {
        **_common("Outcome", i, tenant),
        "interaction_id": _id(tenant, "interaction", i),
        "session_id": None,
        "user_id": f"user-{i % 50}",
        "kind": ("ACCEPTED", "REPHRASED", "ESCALATED", "COPIED")[i % 4],
        "custom_kind": None,
        "value": None,
        "text": None,
        "metadata": {},
    }


def label(i: int, tenant: str) -> dict[str, Any]:
    return {
        **_common("Label", i, tenant),
        "interaction_id": _id(tenant, "interaction", i),
        "version": 1,
        "score": 0.5 if i % 3 else -0.5,
        "confidence": 0.8,
        "trigger": "window_closed",
        "agent_id": f"agent-{i % 3}",
        "agent_version": "v1",
        "model_id": "tiny-1",
        "route": "billing",
        "session_id": "s",
        "user_id": "u",
        "n_explicit": 1,
        "n_implicit": 1,
        "retrieved_doc_ids": [],
        "memory_ids_used": [],
        "annotator_ids": ["ann-1"],
        "contributing_event_ids": [_id(tenant, "Feedback", i)],
    }


def preference(i: int, tenant: str) -> dict[str, Any]:
    return {
        **_common("PreferencePair", i, tenant),
        "prompt": [{"role": "user", "content": f"question number {i}"}],
        "chosen": f"good answer {i}",
        "rejected": f"bad answer {i}",
        "source": "COMPARISON",
        "explicit": True,
        "weight": 1.0,
        "confidence": 0.9,
        "agent_id": "agent-0",
        "route": "billing",
        "annotator_ids": ["ann-1"],
        "interaction_ids": [_id(tenant, "interaction", i)],
        "source_event_ids": [_id(tenant, "Feedback", i)],
    }


def memory(i: int, tenant: str) -> dict[str, Any]:
    return {
        **_common("MemoryUpdate", i, tenant),
        "op": "UPSERT",
        "memory_id": f"mem-{i}",
        "agent_id": "agent-0",
        "route": "billing",
        "situation": f"question number {i}",
        "original_answer": "wrong",
        "corrected_answer": "right",
        "annotator_id": "ann-1",
        "trust": 0.7,
        "visibility": "SHARED",
        "reason": "correction",
        "source_event_ids": [],
    }


def routing(i: int, tenant: str) -> dict[str, Any]:
    return {
        **_common("RoutingUpdate", i, tenant),
        "agent_id": "agent-0",
        "route": "billing",
        "action": ("DEFAULT", "FALLBACK_MODEL", "HUMAN")[i % 3],
        "target": None,
        "bad_rate": 0.3,
        "alpha": 3.0,
        "beta": 7.0,
        "evidence": 10.0,
        "reason": "bad rate",
        "source_event_ids": [],
    }


def doc_weight(i: int, tenant: str) -> dict[str, Any]:
    return {
        **_common("DocWeightUpdate", i, tenant),
        "doc_id": f"doc-{i % 7}",
        "weight": 0.5,
        "bad_share": 0.4,
        "n": 10.0,
        "reason": "bad answers",
        "source_event_ids": [],
    }


def training_run(i: int, tenant: str) -> dict[str, Any]:
    return {
        **_common("TrainingRun", i, tenant),
        "run_id": f"run-{i}",
        "kind": "DPO",
        "status": "PROMOTED",
        "base_model": "tiny",
        "window_start": BASE_MS,
        "window_end": BASE_MS + 3_600_000,
        "offsets": [{"topic": "hfloop.preferences", "partition": 0, "start_offset": 0, "end_offset": 10}],
        "gate_report": "{}",
        "metrics": {"loss": 0.5},
        "audits": [{"name": "length", "passed": True, "detail": "ok"}],
        "artifact_path": None,
        "promoted": True,
        "model_version": f"m{i}",
    }


def dead_letter(i: int, tenant: str) -> dict[str, Any]:
    return {
        **_common("DeadLetter", i, tenant),
        "reason": "undecodable",
        "error": "bad_magic",
        "origin_topic": "hfloop.feedback",
        "origin_partition": 0,
        "origin_offset": i,
        "processor": "synth",
        "key": None,
        "payload": b"\x00\x01",
    }


BUILDERS: dict[str, Callable[[int, str], dict[str, Any]]] = {
    "Interaction": interaction,
    "Feedback": feedback,
    "Outcome": outcome,
    "Label": label,
    "PreferencePair": preference,
    "MemoryUpdate": memory,
    "RoutingUpdate": routing,
    "DocWeightUpdate": doc_weight,
    "TrainingRun": training_run,
    "DeadLetter": dead_letter,
}


def record(name: str, i: int, tenant: str = "acme") -> dict[str, Any]:
    return BUILDERS[name](i, tenant)
