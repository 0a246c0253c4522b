"""MemoryUpdate records -> correction memory points (embedding, trust, rate limit).

An UPSERT from the stream processor becomes a Qdrant point whose id derives from its
memory_id, so a replay rewrites the same point. A new entry is PRIVATE (served to its author
only) unless its author is trusted or enough distinct annotators made agreeing corrections;
then it and the agreeing private entries are promoted and a PROMOTE is published for each.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hfloop.config import Settings
from hfloop.memory import logic
from hfloop.memory.embed import Embedder
from hfloop.memory.records import memory_update
from hfloop.memory.retract import Retractions
from hfloop.memory.store import MemoryStore

log = logging.getLogger(__name__)
Emit = Callable[[str, dict[str, Any]], None]
# Corroboration looks at the nearest entries of up to NEIGHBOUR_ANNOTATORS distinct annotators,
# at most PER_ANNOTATOR each. A flat "32 nearest" window let one person's near-identical flood
# fill it, so honest people agreeing with each other never saw one another. PER_ANNOTATOR > 1
# lets an annotator's agreeing entry be found behind a few of their own other answers nearby.
NEIGHBOUR_ANNOTATORS = 32
PER_ANNOTATOR = 4


@dataclass(frozen=True)
class Reject:
    index: int  # position in the batch
    reason: str  # dead-letter reason: invalid | rate_limited
    message: str


def trust_policy(settings: Settings) -> logic.TrustPolicy:
    trusted = frozenset(a.strip() for a in settings.memory_trusted_annotators.split(",") if a.strip())
    return logic.TrustPolicy(trusted, settings.memory_trust_threshold, settings.memory_corroborating_users,
                             settings.memory_situation_similarity, settings.memory_answer_similarity)  # fmt: skip


def _invalid(u: dict[str, Any]) -> str | None:
    for f in ("tenant_id", "agent_id", "memory_id", "annotator_id"):
        if not str(u.get(f) or "").strip():
            return f"{f} is empty"
    if u["op"] == "UPSERT":
        if not (u.get("situation") or "").strip():
            return "situation is empty"
        if not (u.get("corrected_answer") or "").strip():
            return "corrected_answer is empty"
        if not math.isfinite(float(u.get("trust", 0.0))):
            return "trust is not finite"
    return None


class Corrections:
    def __init__(self, settings: Settings, store: MemoryStore, embedder: Embedder, emit: Emit,
                 retractions: Retractions) -> None:  # fmt: skip
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.emit = emit
        self.retractions = retractions
        self.policy = trust_policy(settings)
        self._buckets: dict[tuple[str, str], logic.Bucket] = {}

    def apply(self, updates: Sequence[dict[str, Any]]) -> tuple[list[Reject], dict[str, int]]:
        """Apply a batch of MemoryUpdate records (in order); returns rejects and counters."""
        stats = {"upserted": 0, "unchanged": 0, "deleted": 0, "promoted": 0, "skipped_retracted": 0}
        rejects: list[Reject] = []
        fresh: list[tuple[int, dict[str, Any], str]] = []
        pids = [logic.point_id("memory", u.get("tenant_id", ""), u.get("memory_id", "")) for u in updates]
        with self.store.lock:
            existing = self.store.get_entries(pids)
            for i, (u, pid) in enumerate(zip(updates, pids, strict=True)):
                why = _invalid(u)
                if why:
                    rejects.append(Reject(i, "invalid", why))
                    continue
                if u["op"] == "DELETE":
                    self.store.delete_entries([pid])
                    existing.pop(pid, None)
                    stats["deleted"] += 1
                    continue
                if u["op"] == "PROMOTE":
                    if pid in existing:
                        self.store.set_entry_payload(pid, {"visibility": "SHARED"})
                        stats["promoted"] += 1
                    continue
                if self.retractions.touches(u["tenant_id"], [u["annotator_id"]],
                                            [*u.get("source_event_ids", []), u["memory_id"]]):  # fmt: skip
                    stats["skipped_retracted"] += 1
                    continue
                old = existing.get(pid)
                if old is not None and all(old.get(f) == u.get(f) for f in ("situation", "corrected_answer",
                                                                          "original_answer", "annotator_id")):  # fmt: skip
                    stats["unchanged"] += 1  # a replay: the point is already there
                    continue
                if old is None:
                    key = (u["tenant_id"], u["annotator_id"])
                    ok, self._buckets[key] = logic.take_token(self._buckets.get(key), int(u["event_time"]),
                                                              self.settings.memory_rate_per_min,
                                                              self.settings.memory_rate_burst)  # fmt: skip
                    if not ok:
                        rejects.append(Reject(i, "rate_limited",
                                              f"annotator {u['annotator_id']} over {self.settings.memory_rate_per_min}/min"))  # fmt: skip
                        continue
                fresh.append((i, u, pid))
        if not fresh:
            return rejects, stats
        # Embedding (the slow part) runs without the store lock, so API reads never wait on it.
        texts = [u["situation"] for _, u, _ in fresh] + [u["corrected_answer"] for _, u, _ in fresh]
        vecs = self.embedder.embed(texts)
        n = len(fresh)
        with self.store.lock:
            for j, (_, u, pid) in enumerate(fresh):
                if self.retractions.touches(u["tenant_id"], [u["annotator_id"]],
                                            [*u.get("source_event_ids", []), u["memory_id"]]):  # fmt: skip
                    stats["skipped_retracted"] += 1  # retracted while we were embedding
                    continue
                stats["promoted"] += self._upsert(u, pid, vecs[j], vecs[n + j], existing.get(pid))
                stats["upserted"] += 1
        return rejects, stats

    def _upsert(self, u: dict[str, Any], pid: str, sit: np.ndarray, ans: np.ndarray,
                old: dict[str, Any] | None) -> int:  # fmt: skip
        tenant, agent = u["tenant_id"], u["agent_id"]
        near = [h for h in self.store.neighbours(tenant, agent, sit, NEIGHBOUR_ANNOTATORS, PER_ANNOTATOR,
                                                 self.policy.situation_similarity) if h.id != pid]  # fmt: skip
        peers = [
            logic.Peer(h.payload["memory_id"], h.payload["annotator_id"], h.payload.get("visibility", "PRIVATE"),
                       h.score, float(np.dot(ans, h.answer)) if h.answer is not None else 0.0)
            for h in near
        ]  # fmt: skip
        trusted_peers = frozenset(h.payload["annotator_id"] for h in near if h.payload.get("trusted"))
        d = logic.decide_visibility(u["memory_id"], u["annotator_id"], float(u.get("trust", 0.0)), peers,
                                    self.policy, trusted_peers)  # fmt: skip
        visibility = "SHARED" if (old and old.get("visibility") == "SHARED") else d.visibility
        now = int(u["event_time"])
        payload = {
            "memory_id": u["memory_id"], "tenant_id": tenant, "agent_id": agent, "route": u.get("route") or "",
            "situation": u["situation"], "original_answer": u.get("original_answer"),
            "corrected_answer": u["corrected_answer"], "annotator_id": u["annotator_id"],
            "user_id": u["annotator_id"], "visibility": visibility, "trust": float(u.get("trust", 0.0)),
            "trusted": logic.is_trusted(u["annotator_id"], float(u.get("trust", 0.0)), self.policy),
            "reason": u.get("reason") or "", "source_event_ids": list(u.get("source_event_ids") or []),
            "event_time": now, "created_ms": (old or {}).get("created_ms", now),
            "corroborated_by": list(d.corroborated_by) if d.visibility == "SHARED" else
                               list((old or {}).get("corroborated_by", [])),
        }  # fmt: skip
        self.store.upsert_entries([(pid, sit, ans, payload)])
        promoted = 0
        if (
            d.visibility == "SHARED"
            and visibility == "SHARED"
            and not (old and old.get("visibility") == "SHARED")
        ):
            by_mid = {h.payload["memory_id"]: h for h in near}
            for mid in d.promote:
                entry = payload if mid == u["memory_id"] else by_mid[mid].payload
                if mid != u["memory_id"]:
                    self.store.set_entry_payload(by_mid[mid].id, {"visibility": "SHARED",
                                                                  "corroborated_by": list(d.corroborated_by)})  # fmt: skip
                self.emit("MemoryUpdate", memory_update(entry, "PROMOTE", d.reason, now, visibility="SHARED"))
                promoted += 1
        return promoted
