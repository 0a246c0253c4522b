"""The records this wing publishes, built from stored state (pure; ids deterministic)."""

from __future__ import annotations

from typing import Any

from hfloop.memory.logic import derived_event_id

MAX_LINEAGE = 20  # routing/weight updates carry the most recent label ids, not all of them


def memory_update(entry: dict[str, Any], op: str, reason: str, t_ms: int, *, visibility: str | None = None,
                  id_parts: tuple[object, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """A MemoryUpdate carrying the whole entry (consumers need no lookup to apply it)."""
    return {
        "event_id": derived_event_id("memory", op, entry["tenant_id"], entry["memory_id"], *id_parts),
        "tenant_id": entry["tenant_id"],
        "event_time": t_ms,
        "op": op,
        "memory_id": entry["memory_id"],
        "agent_id": entry["agent_id"],
        "route": entry.get("route") or "",
        "situation": entry.get("situation") or "",
        "original_answer": entry.get("original_answer"),
        "corrected_answer": entry.get("corrected_answer"),
        "annotator_id": entry["annotator_id"],
        "trust": float(entry.get("trust") or 0.0),
        "visibility": visibility or entry.get("visibility") or "PRIVATE",
        "reason": reason,
        "source_event_ids": list(entry.get("source_event_ids") or []),
    }


def routing_update(state: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "event_id": derived_event_id(
            "routing", state["tenant_id"], state["agent_id"], state["route"], state["action"], state["t_ms"]
        ),  # fmt: skip
        "tenant_id": state["tenant_id"],
        "event_time": int(state["t_ms"]),
        "agent_id": state["agent_id"],
        "route": state["route"],
        "action": state["action"],
        "target": state.get("target"),
        "bad_rate": float(state["bad_rate"]),
        "alpha": float(state["alpha"]),
        "beta": float(state["beta"]),
        "evidence": float(state["evidence"]),
        "reason": reason,
        "source_event_ids": list(state.get("recent_event_ids") or [])[-MAX_LINEAGE:],
    }


def doc_weight_update(state: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "event_id": derived_event_id(
            "docweight", state["tenant_id"], state["doc_id"], round(state["weight"], 6), state["t_ms"]
        ),  # fmt: skip
        "tenant_id": state["tenant_id"],
        "event_time": int(state["t_ms"]),
        "doc_id": state["doc_id"],
        "weight": float(state["weight"]),
        "bad_share": float(state["bad_share"]),
        "n": float(state["n"]),
        "reason": reason,
        "source_event_ids": list(state.get("recent_event_ids") or [])[-MAX_LINEAGE:],
    }
