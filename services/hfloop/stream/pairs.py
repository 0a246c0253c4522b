"""Preference pairs and memory updates: pure functions, no Kafka.

Sources (``PairSource``):

* COMPARISON: chosen/rejected as the annotator said (a TIE makes no pair);
* CORRECTION: corrected text > the agent's response, same prompt;
* DEMONSTRATION: demonstration > the agent's response;
* IMPLICIT_REPHRASE: in one session, the answer the user accepted (ACCEPTED/RESOLVED) > the
  earlier answer whose question they rephrased. The accepted interaction is found by
  following successors: an interaction whose ``parent_interaction_id`` names the earlier
  one, else the next interaction of the session in (event_time, interaction_id) order;
  rephrased interactions in between are skipped over (and each gets its own pair). The
  prompt is the earlier interaction's prompt (the question the rejected answer answered);
* IMPLICIT_OUTCOME: for the same prompt (tenant, agent, messages), an accepted response >
  a rejected one (polarity from outcomes, :func:`hfloop.stream.logic.polarity`).

Every pair id derives from the events that define it (the feedback event, or the two
interaction events), so replays and shuffled input give the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hfloop.config import Settings
from hfloop.stream.logic import Record, derived_id

Member = dict[str, Any]  # an interaction as a session/prompt group sees it (see member_of)


@dataclass(frozen=True)
class PairPolicy:
    weights: Mapping[str, float]
    confidence: Mapping[str, float]
    implicit_feedback_factor: float = 0.5
    session_max: int = 64
    prompt_max: int = 16

    @classmethod
    def from_settings(cls, s: Settings) -> PairPolicy:
        return cls(dict(s.stream_pair_weights), dict(s.stream_pair_confidence), s.stream_implicit_feedback_factor,
                   s.stream_session_max, s.stream_prompt_max)  # fmt: skip

    @classmethod
    def default(cls) -> PairPolicy:
        return cls.from_settings(Settings.model_construct())


def _pair(source: str, pid: str, *, tenant: str, t: int, prompt: list[dict[str, str]], chosen: str, rejected: str,
          explicit: bool, weight: float, confidence: float, agent: str, route: str, annotators: Iterable[str],
          interactions: Iterable[str], sources: Iterable[str]) -> Record:  # fmt: skip
    return {
        "event_id": pid, "tenant_id": tenant, "event_time": t, "prompt": [dict(m) for m in prompt],
        "chosen": chosen, "rejected": rejected, "source": source, "explicit": explicit,
        "weight": round(max(1e-6, min(1.0, weight)), 6), "confidence": round(max(0.0, min(1.0, confidence)), 6),
        "agent_id": agent, "route": route, "annotator_ids": sorted(set(annotators)),
        "interaction_ids": list(dict.fromkeys(interactions)), "source_event_ids": sorted(set(sources)),
    }  # fmt: skip


def explicit_pair(inter: Record, fb: Record, policy: PairPolicy) -> Record | None:
    """The pair a comparison, correction or demonstration states about ``inter`` (or None)."""
    kind = fb["kind"]
    if kind == "PREFERENCE":
        c = fb["comparison"]
        if c["choice"] == "TIE":
            return None
        source = "COMPARISON"
        chosen, rejected = (
            (c["response_a"], c["response_b"]) if c["choice"] == "A" else (c["response_b"], c["response_a"])
        )
        confidence = policy.confidence[source] if c.get("strength") is None else float(c["strength"])
    elif kind in ("CORRECTION", "DEMONSTRATION"):
        source = kind
        chosen, rejected = (
            fb["correction"] if kind == "CORRECTION" else fb["demonstration"],
            inter["response"],
        )
        confidence = policy.confidence[source]
    else:
        return None
    if not chosen.strip() or chosen == rejected:
        return None
    explicit = fb.get("source", "EXPLICIT") == "EXPLICIT"
    weight = policy.weights[source] * (1.0 if explicit else policy.implicit_feedback_factor)
    return _pair(source, derived_id("pair", source, fb["event_id"]), tenant=inter["tenant_id"],
                 t=max(int(inter["event_time"]), int(fb["event_time"])), prompt=inter["messages"], chosen=chosen,
                 rejected=rejected, explicit=explicit, weight=weight, confidence=confidence,
                 agent=inter["agent_id"], route=inter["route"], annotators=[fb["annotator_id"]],
                 interactions=[inter["interaction_id"]], sources=[fb["event_id"], inter["event_id"]])  # fmt: skip


def situation_of(messages: Sequence[Mapping[str, str]]) -> str:
    """The request text a memory entry is retrieved by: the last user message."""
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return messages[-1]["content"] if messages else ""


def memory_update(inter: Record, fb: Record) -> Record | None:
    """MemoryUpdate UPSERT for a correction/demonstration joined with its interaction.

    Trust and promotion are the memory wing's decision: entries start PRIVATE with trust 0.
    """
    if fb["kind"] not in ("CORRECTION", "DEMONSTRATION"):
        return None
    corrected = fb["correction"] if fb["kind"] == "CORRECTION" else fb["demonstration"]
    return {
        "event_id": derived_id("memory-upsert", fb["event_id"]),
        "tenant_id": inter["tenant_id"],
        "event_time": int(fb["event_time"]),
        "op": "UPSERT",
        "memory_id": derived_id("memory", fb["event_id"]),
        "agent_id": inter["agent_id"],
        "route": inter["route"],
        "situation": situation_of(inter["messages"]),
        "original_answer": inter["response"],
        "corrected_answer": corrected,
        "annotator_id": fb["annotator_id"],
        "trust": 0.0,
        "visibility": "PRIVATE",
        "reason": fb["kind"].lower(),
        "source_event_ids": [fb["event_id"], inter["event_id"]],
    }


# --- groups: sessions and prompts ----------------------------------------------------------
def prompt_key(tenant: str, agent: str, messages: Sequence[Mapping[str, str]]) -> str:
    digest = hashlib.blake2b(
        orjson.dumps([[m["role"], m["content"]] for m in messages]), digest_size=12
    ).hexdigest()
    return f"p/{tenant}/{agent}/{digest}"


def session_key(tenant: str, session_id: str) -> str:
    return f"s/{tenant}/{session_id}"


def member_of(inter: Record, outcomes: Mapping[str, str]) -> Member:
    """What a group keeps of an interaction; ``outcomes`` maps outcome event id -> kind."""
    return {
        "iid": inter["interaction_id"], "eid": inter["event_id"], "t": int(inter["event_time"]),
        "tenant": inter["tenant_id"], "session": inter["session_id"], "user": inter["user_id"],
        "agent": inter["agent_id"], "route": inter["route"], "parent": inter.get("parent_interaction_id"),
        "messages": inter["messages"], "response": inter["response"], "outcomes": dict(outcomes),
    }  # fmt: skip


def merge_member(old: Member | None, new: Member) -> Member:
    """A later fact about the same interaction adds outcomes, never removes them."""
    if old is None:
        return new
    return {**new, "outcomes": {**old["outcomes"], **new["outcomes"]}}


def _ids(m: Member, kinds: frozenset[str]) -> list[str]:
    return sorted(eid for eid, k in m["outcomes"].items() if k in kinds)


_ACCEPT = frozenset({"ACCEPTED", "RESOLVED"})
_REPHRASE = frozenset({"REPHRASED"})


def _successors(members: Sequence[Member]) -> dict[str, Member]:
    """Next interaction of each one: its earliest explicit follow-up, else the next in time."""
    order = sorted(members, key=lambda m: (m["t"], m["iid"]))
    nxt = {a["iid"]: b for a, b in zip(order, order[1:], strict=False)}
    linked: set[str] = set()
    for m in order:
        parent = m.get("parent")
        if parent and parent != m["iid"] and parent not in linked:
            nxt[parent] = m
            linked.add(parent)
    return nxt


def rephrase_pairs(members: Sequence[Member], policy: PairPolicy) -> list[Record]:
    """IMPLICIT_REPHRASE pairs of one session's interactions."""
    nxt = _successors(members)
    out = []
    source = "IMPLICIT_REPHRASE"
    for x in sorted(members, key=lambda m: (m["t"], m["iid"])):
        rephrased = _ids(x, _REPHRASE)
        if not rephrased:
            continue
        y, seen = nxt.get(x["iid"]), {x["iid"]}
        while y is not None and y["iid"] not in seen and not _ids(y, _ACCEPT) and _ids(y, _REPHRASE):
            seen.add(y["iid"])
            y = nxt.get(y["iid"])
        if y is None or y["iid"] in seen or not _ids(y, _ACCEPT) or y["response"] == x["response"]:
            continue
        out.append(_pair(source, derived_id("pair", source, x["eid"], y["eid"]), tenant=x["tenant"],
                         t=max(x["t"], y["t"]), prompt=x["messages"], chosen=y["response"], rejected=x["response"],
                         explicit=False, weight=policy.weights[source], confidence=policy.confidence[source],
                         agent=x["agent"], route=x["route"], annotators=[x["user"]],
                         interactions=[x["iid"], y["iid"]],
                         sources=[x["eid"], y["eid"], *rephrased, *_ids(y, _ACCEPT)]))  # fmt: skip
    return out


def outcome_pairs(members: Sequence[Member], policy: PairPolicy) -> list[Record]:
    """IMPLICIT_OUTCOME pairs among interactions with the same prompt: accepted > rejected."""
    from hfloop.stream.logic import NEGATIVE_OUTCOMES, polarity

    source = "IMPLICIT_OUTCOME"
    ordered = sorted(members, key=lambda m: (m["t"], m["iid"]))
    good = [m for m in ordered if polarity(m["outcomes"].values()) > 0]
    bad = [m for m in ordered if polarity(m["outcomes"].values()) < 0]
    out = []
    for a in good:
        for r in bad:
            if a["response"] == r["response"]:
                continue
            out.append(_pair(source, derived_id("pair", source, a["eid"], r["eid"]), tenant=a["tenant"],
                             t=max(a["t"], r["t"]), prompt=a["messages"], chosen=a["response"],
                             rejected=r["response"], explicit=False, weight=policy.weights[source],
                             confidence=policy.confidence[source], agent=a["agent"], route=a["route"],
                             annotators=[a["user"], r["user"]], interactions=[a["iid"], r["iid"]],
                             sources=[a["eid"], r["eid"], *_ids(a, _ACCEPT), *_ids(r, NEGATIVE_OUTCOMES)]))  # fmt: skip
    return out


def trim_members(members: dict[str, Member], limit: int) -> dict[str, Member]:
    """Keep the newest ``limit`` members (by event time) so group state stays bounded."""
    if len(members) <= limit:
        return members
    keep = sorted(members.values(), key=lambda m: (m["t"], m["iid"]))[-limit:]
    return {m["iid"]: m for m in keep}
