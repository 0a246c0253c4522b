"""Retraction: take back everything a bad annotator (or one bad event) put into the fast loop.

``retract`` removes the memory entries they made (publishing a MemoryUpdate DELETE for
each), demotes shared entries whose corroboration depended on them (an UPSERT back to
PRIVATE), takes their labels' evidence out of the routing and weight state (publishing the
RoutingUpdate / DocWeightUpdate that follow), and records the retraction in Qdrant so that
replayed or late records from them are skipped from then on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from hfloop.events.kafka import now_ms
from hfloop.memory import logic
from hfloop.memory.records import memory_update
from hfloop.memory.store import MemoryStore

if TYPE_CHECKING:
    from hfloop.memory.evidence import Evidence

Emit = Callable[[str, dict[str, Any]], None]


class Retractions:
    """Retracted annotators/events per tenant, cached briefly: in server mode the API records a
    retraction in another process, and the worker sees it within ``ttl_s``."""

    def __init__(self, store: MemoryStore, ttl_s: float = 1.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._at = 0.0
        self._by_tenant: dict[str, tuple[set[str], set[str]]] = {}

    def _load(self) -> dict[str, tuple[set[str], set[str]]]:
        if time.monotonic() - self._at > self.ttl_s:
            out: dict[str, tuple[set[str], set[str]]] = {}
            for _, p in self.store.find("retractions"):
                annotators, events = out.setdefault(p["tenant_id"], (set(), set()))
                (annotators if p["kind"] == "annotator" else events).add(p["value"])
            self._by_tenant, self._at = out, time.monotonic()
        return self._by_tenant

    def touches(self, tenant_id: str, annotators: Iterable[str], event_ids: Iterable[str]) -> bool:
        a, e = self._load().get(tenant_id, (set(), set()))
        return bool(a or e) and logic.touches(annotators, event_ids, a, e)

    def add(self, tenant_id: str, kind: str, value: str) -> None:
        rec = {"tenant_id": tenant_id, "kind": kind, "value": value, "t_ms": now_ms()}
        self.store.put("retractions", [(logic.point_id("retract", tenant_id, kind, value), rec)])
        self._by_tenant.setdefault(tenant_id, (set(), set()))[0 if kind == "annotator" else 1].add(value)


def retract(tenant_id: str, *, event_id: str | None, annotator_id: str | None, store: MemoryStore,
            evidence: Evidence, retractions: Retractions, emit: Emit,
            trust: logic.TrustPolicy) -> dict[str, Any]:  # fmt: skip
    """Remove every trace of ``annotator_id`` / ``event_id`` in ``tenant_id``; returns what changed."""
    if not (event_id or annotator_id):
        raise ValueError("retract needs event_id or annotator_id")
    t = now_ms()
    tag = f"annotator={annotator_id}" if annotator_id else f"event={event_id}"
    with store.lock:
        # Recorded first, so a worker batch running meanwhile already skips them.
        if annotator_id:
            retractions.add(tenant_id, "annotator", annotator_id)
        if event_id:
            retractions.add(tenant_id, "event", event_id)
        removed = store.find_entries(tenant_id, annotator_id=annotator_id, event_id=event_id)
        store.delete_entries([pid for pid, _ in removed])
        for _, entry in removed:
            emit("MemoryUpdate", memory_update(entry, "DELETE", f"retracted ({tag})", t))
        demoted = 0
        removed_annotators = {annotator_id} if annotator_id else {e["annotator_id"] for _, e in removed}
        for who in sorted(removed_annotators):
            for pid, entry in store.find_entries(tenant_id, corroborated_by=who):
                left = [a for a in entry.get("corroborated_by", []) if a not in removed_annotators]
                if entry.get("visibility") == "SHARED" and not entry.get("trusted") and \
                        not logic.still_corroborated(left, removed_annotators, trust):  # fmt: skip
                    store.set_entry_payload(pid, {"visibility": "PRIVATE", "corroborated_by": left})
                    emit("MemoryUpdate", memory_update(entry, "UPSERT", f"demoted: corroboration retracted ({tag})", t,
                                                       visibility="PRIVATE", id_parts=("demote", tag)))  # fmt: skip
                    demoted += 1
                else:
                    store.set_entry_payload(pid, {"corroborated_by": left})
        ledger = store.find("ledger", tenant_id, annotator_ids=annotator_id or "", event_ids=event_id or "")
        routing_changes, weight_changes = evidence.remove([e for _, e in ledger], f"retracted ({tag})")
    return {
        "tenant_id": tenant_id, "annotator_id": annotator_id, "event_id": event_id,
        "removed_entries": len(removed), "removed_memory_ids": sorted(e["memory_id"] for _, e in removed),
        "demoted_entries": demoted, "removed_labels": len(ledger),
        "routing_changes": routing_changes, "weight_changes": weight_changes,
    }  # fmt: skip
