"""Builders of the input events (pure: ids, timestamps, defaults), shared by SDK and gateway."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

OUTCOME_KINDS = ("ACCEPTED", "COPIED", "EDITED", "DELETED", "REPHRASED", "ESCALATED", "RESOLVED", "REOPENED",
                 "ABANDONED", "CUSTOM")  # fmt: skip


def _now() -> int:
    return time.time_ns() // 1_000_000


class _Ids:
    """Event ids: 32 lowercase hex digits, a random per-process half + a counter.

    Unique by construction within a process (the counter; ``next`` on itertools.count is
    atomic under the GIL) and across processes by the random half (64 bits from os.urandom,
    redrawn in a forked child) plus a random counter start. uuid4() costs ~1.7 us, a third of
    the SDK's whole budget per record; this costs ~0.15 us. Same shape as ``uuid4().hex``
    (which ids used to be), but not an RFC 4122 UUID: nothing parses them as one.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(8)) >> 2)  # room before 16 digits overflow

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_ids = _Ids()  # the native SDK sender draws from the same prefix and counter
_id = _ids.new  # a bound method: cheaper to call than an instance's __call__


def messages_of(prompt: str | Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


# Defaults of an Interaction's optional fields (the SDK's signatures repeat them by name).
ANONYMOUS, AGENT_VERSION, MODEL_ID, ROUTE = "anonymous", "0", "unknown", "default"


def interaction(
    *,
    tenant_id: str,
    agent_id: str,
    prompt: str | Sequence[Mapping[str, str]],
    response: str,
    interaction_id: str | None = None,
    session_id: str | None = None,
    user_id: str = ANONYMOUS,
    agent_version: str = AGENT_VERSION,
    model_id: str = MODEL_ID,
    route: str = ROUTE,
    retrieved_doc_ids: Sequence[str] = (),
    memory_ids_used: Sequence[str] = (),
    latency_ms: float = 0.0,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    metadata: Mapping[str, str] | None = None,
    trace_id: str | None = None,
    parent_interaction_id: str | None = None,
    event_time: int | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    # The record is the caller's to keep: it shares no list or dict with the arguments.
    return interaction_record(
        tenant_id, agent_id, messages_of(prompt), response, interaction_id, session_id, user_id, agent_version, model_id,
        route, list(retrieved_doc_ids), list(memory_ids_used), latency_ms, prompt_tokens, completion_tokens,
        dict(metadata or {}), trace_id, parent_interaction_id, event_time, event_id,
    )  # fmt: skip


def interaction_record(
    tenant_id: str,
    agent_id: str,
    messages: list[dict[str, str]],
    response: str,
    interaction_id: str | None,
    session_id: str | None,
    user_id: str,
    agent_version: str,
    model_id: str,
    route: str,
    retrieved_doc_ids: Sequence[str],
    memory_ids_used: Sequence[str],
    latency_ms: float,
    prompt_tokens: int,
    completion_tokens: int,
    metadata: Mapping[str, str] | None,
    trace_id: str | None,
    parent_interaction_id: str | None,
    event_time: int | None,
    event_id: str | None,
) -> dict[str, Any]:
    """An Interaction from every field, positionally: the one place its rules live.

    Positional, because keyword binding of twenty arguments is a measurable share of the SDK's
    per-record cost. ``messages`` (see :func:`messages_of`) and the lists and metadata dict that
    already are one go in as they are: the SDK encodes the record at once and drops it;
    :func:`interaction` copies before calling.
    """
    iid = interaction_id or _id()
    return {
        "event_id": event_id or _id(),
        "tenant_id": tenant_id,
        "event_time": event_time or _now(),
        "interaction_id": iid,
        "session_id": session_id or iid,
        "user_id": user_id,
        "agent_id": agent_id,
        "agent_version": agent_version,
        "model_id": model_id,
        "route": route,
        "messages": messages,
        "response": response,
        "retrieved_doc_ids": retrieved_doc_ids
        if type(retrieved_doc_ids) is list
        else list(retrieved_doc_ids),
        "memory_ids_used": memory_ids_used if type(memory_ids_used) is list else list(memory_ids_used),
        "latency_ms": float(latency_ms),
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "metadata": metadata if type(metadata) is dict else dict(metadata or {}),
        "trace_id": trace_id,
        "parent_interaction_id": parent_interaction_id,
    }


def feedback(
    *,
    tenant_id: str,
    interaction_id: str,
    kind: str,
    annotator_id: str,
    source: str = "EXPLICIT",
    annotator_pool: str | None = None,
    session_id: str | None = None,
    rating: Mapping[str, Any] | None = None,
    correction: str | None = None,
    comparison: Mapping[str, Any] | None = None,
    demonstration: str | None = None,
    comment: str | None = None,
    metadata: Mapping[str, str] | None = None,
    event_time: int | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or _id(),
        "tenant_id": tenant_id,
        "event_time": event_time or _now(),
        "interaction_id": interaction_id,
        "kind": kind,
        "source": source,
        "annotator_id": annotator_id,
        "annotator_pool": annotator_pool,
        "session_id": session_id,
        "rating": dict(rating) if rating else None,
        "correction": correction,
        "comparison": dict(comparison) if comparison else None,
        "demonstration": demonstration,
        "comment": comment,
        "metadata": dict(metadata or {}),
    }


def outcome(
    *,
    tenant_id: str,
    interaction_id: str,
    kind: str,
    session_id: str | None = None,
    user_id: str | None = None,
    custom_kind: str | None = None,
    value: float | None = None,
    text: str | None = None,
    metadata: Mapping[str, str] | None = None,
    event_time: int | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    kind = kind.upper()
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"unknown outcome kind {kind!r}; one of {', '.join(OUTCOME_KINDS)}")
    if kind == "CUSTOM" and not custom_kind:
        raise ValueError("a CUSTOM outcome needs custom_kind")
    return {
        "event_id": event_id or _id(),
        "tenant_id": tenant_id,
        "event_time": event_time or _now(),
        "interaction_id": interaction_id,
        "session_id": session_id,
        "user_id": user_id,
        "kind": kind,
        "custom_kind": custom_kind,
        "value": value,
        "text": text,
        "metadata": dict(metadata or {}),
    }
