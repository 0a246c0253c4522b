"""Labels -> routing rules and retrieval weights.

Each labeled interaction leaves one ledger entry (its latest label version): the route and
documents it counted for, its weight and time. Folding a change means taking the old
entry's contribution out of the decayed counts and putting the new one in, so a label
revision replaces, a replay changes nothing (same version), and a retraction removes
exactly what the retracted labels added. Decisions come from ``logic.decide_route`` and
``logic.doc_weight``; a change is published and the state is written to Qdrant, which is
where a restarted worker (or an API in another process) finds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from hfloop.config import Settings
from hfloop.memory import logic
from hfloop.memory.records import MAX_LINEAGE, doc_weight_update, routing_update
from hfloop.memory.retract import Retractions
from hfloop.memory.store import MemoryStore

Emit = Callable[[str, dict[str, Any]], None]
Ledger = dict[str, Any]


def routing_policy(s: Settings) -> logic.RoutingPolicy:
    return logic.RoutingPolicy(s.routing_prior_bad, s.routing_prior_good, s.routing_upper, s.routing_lower,
                               s.routing_min_evidence, s.routing_half_life_s, s.routing_fallback_action,
                               s.routing_fallback_target)  # fmt: skip


def weight_policy(s: Settings) -> logic.WeightPolicy:
    return logic.WeightPolicy(s.weights_prior_bad, s.weights_prior_good, s.weights_half_life_s, s.weights_floor,
                              s.weights_min_change)  # fmt: skip


def ledger_entry(label: dict[str, Any]) -> Ledger:
    return {
        "tenant_id": label["tenant_id"], "agent_id": label["agent_id"], "route": label["route"],
        "interaction_id": label["interaction_id"], "version": int(label["version"]),
        "model_id": str(label.get("model_id") or ""),
        "memory_assisted": bool(label.get("memory_ids_used")),
        "t_ms": int(label["event_time"]), "bad": logic.is_bad(float(label["score"])),
        "weight": logic.label_weight(float(label["confidence"])),
        "doc_ids": sorted(set(label.get("retrieved_doc_ids") or [])),
        "annotator_ids": sorted(set(label.get("annotator_ids") or [])),
        "event_ids": [label["event_id"], *(label.get("contributing_event_ids") or [])],
        "label_event_id": label["event_id"],
    }  # fmt: skip


def _invalid(label: dict[str, Any]) -> str | None:
    for f in ("tenant_id", "agent_id", "interaction_id"):
        if not str(label.get(f) or "").strip():
            return f"{f} is empty"
    score, conf = float(label["score"]), float(label["confidence"])
    if not (math.isfinite(score) and -1.0 <= score <= 1.0):
        return f"score {score} is not within [-1, 1]"
    if not (math.isfinite(conf) and 0.0 <= conf <= 1.0):
        return f"confidence {conf} is not within [0, 1]"
    return None


def _counts(state: dict[str, Any] | None) -> logic.Counts:
    if not state:
        return logic.Counts()
    return logic.Counts(float(state["bad"]), float(state["good"]), int(state["t_ms"]))


class Evidence:
    def __init__(self, settings: Settings, store: MemoryStore, emit: Emit, retractions: Retractions) -> None:
        self.store = store
        self.emit = emit
        self.retractions = retractions
        self.routing = routing_policy(settings)
        self.weights = weight_policy(settings)

    def apply(self, labels: Sequence[dict[str, Any]]) -> tuple[list[tuple[int, str, str]], dict[str, int]]:
        """Fold a batch of Label records in; returns rejects (index, reason, message) and counters."""
        stats = {"labels": 0, "stale": 0, "skipped_retracted": 0, "routing_changes": 0, "weight_changes": 0}
        rejects: list[tuple[int, str, str]] = []
        latest: dict[str, Ledger] = {}
        for i, lab in enumerate(labels):
            why = _invalid(lab)
            if why:
                rejects.append((i, "invalid", why))
                continue
            entry = ledger_entry(lab)
            if self.retractions.touches(entry["tenant_id"], entry["annotator_ids"], entry["event_ids"]):
                stats["skipped_retracted"] += 1
                continue
            pid = logic.point_id("label", entry["tenant_id"], entry["interaction_id"])
            if pid not in latest or latest[pid]["version"] < entry["version"]:
                latest[pid] = entry
        with self.store.lock:
            old = self.store.get("ledger", list(latest))
            changes: list[tuple[Ledger | None, Ledger | None]] = []
            for pid, entry in latest.items():
                prev = old.get(pid)
                if prev is not None and int(prev["version"]) >= entry["version"]:
                    stats["stale"] += 1  # a replay or an out-of-order older version
                    continue
                changes.append((prev, entry))
            r, w = self.fold(changes, "label")
            self.store.put("ledger", [(logic.point_id("label", e["tenant_id"], e["interaction_id"]), e)
                                      for _, e in changes if e is not None])  # fmt: skip
        stats.update(labels=len(changes), routing_changes=r, weight_changes=w)
        return rejects, stats

    def remove(self, entries: Sequence[Ledger], why: str) -> tuple[int, int]:
        """Take ledger entries' evidence out (retraction); returns (routing changes, weight changes)."""
        with self.store.lock:
            out = self.fold([(e, None) for e in entries], why)
            self.store.delete(
                "ledger", [logic.point_id("label", e["tenant_id"], e["interaction_id"]) for e in entries]
            )
        return out

    def fold(self, changes: Sequence[tuple[Ledger | None, Ledger | None]], why: str) -> tuple[int, int]:
        """Apply (old, new) ledger changes to routing and weight state; publish what moved."""
        route_ids: dict[str, tuple[str, str, str]] = {}
        doc_ids: dict[str, tuple[str, str]] = {}
        for old, new in changes:
            for e in (old, new):
                if e is None:
                    continue
                route_ids[logic.point_id("route", e["tenant_id"], e["agent_id"], e["route"])] = (
                    e["tenant_id"], e["agent_id"], e["route"])  # fmt: skip
                for d in e["doc_ids"]:
                    doc_ids[logic.point_id("doc", e["tenant_id"], d)] = (e["tenant_id"], d)
        routes = self.store.get("routing", list(route_ids))
        docs = self.store.get("docweights", list(doc_ids))
        rc = {pid: _counts(routes.get(pid)) for pid in route_ids}
        dc = {pid: _counts(docs.get(pid)) for pid in doc_ids}
        lineage: dict[str, list[str]] = {pid: list((routes.get(pid) or docs.get(pid) or {}).get("recent_event_ids", []))
                                         for pid in [*route_ids, *doc_ids]}  # fmt: skip
        for old, new in changes:
            for e, sign in ((old, -1), (new, 1)):
                if e is None:
                    continue
                rp = logic.point_id("route", e["tenant_id"], e["agent_id"], e["route"])
                assisted = bool(e.get("memory_assisted", False))
                if logic.judges_route(e.get("model_id", ""), assisted, self.routing):
                    rc[rp] = logic.add_label(
                        rc[rp], e["bad"], e["weight"], e["t_ms"], self.routing.half_life_s, sign
                    )
                    if sign > 0:
                        lineage[rp].append(e["label_event_id"])
                # An answer the memory rewrote says nothing about the documents retrieved for it.
                for d in [] if assisted else e["doc_ids"]:
                    dp = logic.point_id("doc", e["tenant_id"], d)
                    dc[dp] = logic.add_label(
                        dc[dp], e["bad"], e["weight"], e["t_ms"], self.weights.half_life_s, sign
                    )
                    if sign > 0:
                        lineage[dp].append(e["label_event_id"])
        return self._route_decisions(route_ids, routes, rc, lineage, why), \
            self._weight_decisions(doc_ids, docs, dc, lineage, why)  # fmt: skip

    def _route_decisions(self, keys: dict[str, tuple[str, str, str]], prev: dict[str, dict[str, Any]],
                         counts: dict[str, logic.Counts], lineage: dict[str, list[str]], why: str) -> int:  # fmt: skip
        changed = 0
        out = []
        for pid, (tenant, agent, route) in keys.items():
            c = counts[pid]
            current = (prev.get(pid) or {}).get("action", "DEFAULT")
            d = logic.decide_route(current, c, self.routing)
            state = {"tenant_id": tenant, "agent_id": agent, "route": route, "bad": c.bad, "good": c.good,
                     "t_ms": c.t_ms, "action": d.action, "target": d.target,
                     "bad_rate": logic.bad_rate(c, self.routing), "evidence": c.n,
                     "alpha": self.routing.prior_bad + c.bad, "beta": self.routing.prior_good + c.good,
                     "updated_at": c.t_ms if d.changed else (prev.get(pid) or {}).get("updated_at", c.t_ms),
                     "recent_event_ids": lineage[pid][-MAX_LINEAGE:]}  # fmt: skip
            if d.changed:
                changed += 1
                self.emit("RoutingUpdate", routing_update(state, f"{why}: {d.reason}"))
            out.append((pid, state))
        self.store.put("routing", out)
        return changed

    def _weight_decisions(self, keys: dict[str, tuple[str, str]], prev: dict[str, dict[str, Any]],
                          counts: dict[str, logic.Counts], lineage: dict[str, list[str]], why: str) -> int:  # fmt: skip
        changed = 0
        out = []
        for pid, (tenant, doc) in keys.items():
            c = counts[pid]
            weight = logic.doc_weight(c, self.weights)
            published = float((prev.get(pid) or {}).get("published_weight", 1.0))
            state = {"tenant_id": tenant, "doc_id": doc, "bad": c.bad, "good": c.good, "t_ms": c.t_ms,
                     "n": c.n, "bad_share": logic.bad_share(c, self.weights), "weight": weight,
                     "published_weight": published, "recent_event_ids": lineage[pid][-MAX_LINEAGE:]}  # fmt: skip
            if logic.weight_moved(published, weight, self.weights):
                changed += 1
                state["published_weight"] = weight
                self.emit(
                    "DocWeightUpdate",
                    doc_weight_update(state, f"{why}: weight {published:.3f} -> {weight:.3f}"),
                )
            out.append((pid, state))
        self.store.put("docweights", out)
        return changed
