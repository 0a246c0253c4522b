"""Qdrant access for the fast loop: the correction memory and its small state collections.

Collections (names prefixed by ``settings.memory_collection_prefix``):

* ``memory_<space>``: one point per correction; named vectors ``situation`` (searched) and
  ``answer`` (to tell whether two corrections agree); payload indexes on tenant_id, agent_id.
* ``ledger``: one vector-less point per labeled interaction (its latest label version): what
  each label added to routing and weight evidence, so a revision or a retraction can take
  exactly that back.
* ``routing`` / ``docweights``: decayed counts and the current decision per (tenant, agent,
  route) and per (tenant, doc): the state the worker folds labels into and the API serves.
* ``retractions``: retracted annotators and events, so a replay cannot bring them back.

Qdrant is the durable home of all of it: a restarted worker, or an API in another process
(server mode), reads the same state. This module decides nothing; ``logic.py`` does.
Every call holds ``self.lock``: the embedded client is not meant for concurrent threads, and
in ``hfloop dev`` the worker and the API share one store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from hfloop.config import Settings
from hfloop.memory.mirror import MemoryMirror

KV_COLLECTIONS = ("ledger", "routing", "docweights", "retractions")
INDEXED = {
    "memory": (
        "tenant_id",
        "agent_id",
        "annotator_id",
        "visibility",
        "route",
        "source_event_ids",
        "corroborated_by",
    ),
    "ledger": ("tenant_id", "agent_id", "annotator_ids", "event_ids"),
    "routing": ("tenant_id", "agent_id"),
    "docweights": ("tenant_id",),
    "retractions": ("tenant_id",),
}


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]
    answer: np.ndarray | None = None


def open_client(settings: Settings) -> QdrantClient:
    """A Qdrant server when HFLOOP_QDRANT_URL is set, else the embedded folder (one process only)."""
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantClient(url=settings.qdrant_url, api_key=key, timeout=10)
    settings.qdrant_folder.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.qdrant_folder))


def _match(key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _any(key: str, values: Sequence[str]) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))


class MemoryStore:
    def __init__(self, settings: Settings, space: str, dim: int, client: QdrantClient | None = None) -> None:
        self.settings = settings
        self.space = space
        self.dim = dim
        self.client = client or open_client(settings)
        self.local = settings.qdrant_url is None
        self.lock = threading.RLock()
        p = settings.memory_collection_prefix
        self.memory = f"{p}memory_{space.replace('-', '_')}"
        self.kv = {name: f"{p}{name}" for name in KV_COLLECTIONS}
        self._ensure()
        # Embedded: searches go to an in-memory mirror (see mirror.py); a server filters itself.
        self.mirror: MemoryMirror | None = MemoryMirror(dim) if self.local else None
        if self.mirror is not None:
            self._load_mirror(self.mirror)

    def _load_mirror(self, mirror: MemoryMirror) -> None:
        offset: Any = None
        with self.lock:
            while True:
                recs, offset = self.client.scroll(self.memory, limit=1024, offset=offset, with_payload=True,
                                                  with_vectors=True)  # fmt: skip
                items = []
                for r in recs:
                    vec = r.vector if isinstance(r.vector, dict) else {}
                    sit, ans = vec.get("situation"), vec.get("answer")
                    if sit is not None and ans is not None:
                        items.append((str(r.id), np.asarray(sit, np.float32), np.asarray(ans, np.float32),
                                      dict(r.payload or {})))  # fmt: skip
                mirror.upsert(items)
                if offset is None:
                    return

    # --- set-up ------------------------------------------------------------------------
    def _ensure(self) -> None:
        with self.lock:
            if not self.client.collection_exists(self.memory):
                vec = models.VectorParams(size=self.dim, distance=models.Distance.COSINE)
                self.client.create_collection(self.memory, vectors_config={"situation": vec, "answer": vec})
                self._indexes(self.memory, INDEXED["memory"])
            for name, coll in self.kv.items():
                if not self.client.collection_exists(coll):
                    self.client.create_collection(coll, vectors_config={})
                    self._indexes(coll, INDEXED[name])

    def _indexes(self, collection: str, fields: Iterable[str]) -> None:
        if self.local:
            return  # the embedded client ignores payload indexes (and warns); the server uses them
        for f in fields:
            self.client.create_payload_index(collection, f, models.PayloadSchemaType.KEYWORD)

    def close(self) -> None:
        with self.lock:
            self.client.close()

    # --- correction memory -------------------------------------------------------------
    def upsert_entries(self, entries: Sequence[tuple[str, np.ndarray, np.ndarray, dict[str, Any]]]) -> None:
        if not entries:
            return
        points = [
            models.PointStruct(
                id=pid, vector={"situation": sit.tolist(), "answer": ans.tolist()}, payload=payload
            )
            for pid, sit, ans, payload in entries
        ]
        with self.lock:
            self.client.upsert(self.memory, points, wait=True)
            if self.mirror is not None:
                self.mirror.upsert(entries)

    def get_entries(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        if self.mirror is not None:
            return self.mirror.get(ids)
        with self.lock:
            recs = self.client.retrieve(self.memory, list(ids), with_payload=True, with_vectors=False)
        return {str(r.id): dict(r.payload or {}) for r in recs}

    def set_entry_payload(self, pid: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.client.set_payload(self.memory, payload=payload, points=[pid], wait=True)
            if self.mirror is not None:
                self.mirror.set_payload(pid, payload)

    def search(self, tenant_id: str, agent_id: str, vector: Sequence[float], k: int, threshold: float,
               user_id: str | None = None, route: str | None = None) -> list[Hit]:  # fmt: skip
        """Entries of this tenant and agent visible to ``user_id``: shared ones and the user's own."""
        if self.mirror is not None:
            found = self.mirror.query(tenant_id, agent_id, np.asarray(vector, np.float32), k, threshold,
                                      user_id=user_id, route=route)  # fmt: skip
            hits = [Hit(pid, score, payload) for pid, score, payload, _ in found]
        else:
            must: list[Any] = [_match("tenant_id", tenant_id), _match("agent_id", agent_id)]
            if route is not None:
                must.append(_match("route", route))
            visible: list[Any] = [_match("visibility", "SHARED")]
            if user_id:
                visible.append(_match("annotator_id", user_id))
            flt = models.Filter(must=must, should=visible)
            # The server client is thread-safe: no lock, searches never queue behind the worker.
            res = self.client.query_points(self.memory, query=list(vector), using="situation", query_filter=flt,
                                           limit=k, score_threshold=threshold, with_payload=True)  # fmt: skip
            hits = [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in res.points]
        # Defence in depth: the filter already scopes to the tenant; never trust one line for it.
        return [h for h in hits if h.payload.get("tenant_id") == tenant_id]

    def neighbours(self, tenant_id: str, agent_id: str, vector: np.ndarray, annotators: int, per_annotator: int,
                   min_score: float) -> list[Hit]:  # fmt: skip
        """Nearby entries of any visibility, with their answer vectors (for corroboration), best
        first: at most ``per_annotator`` of each annotator, from the ``annotators`` annotators whose
        nearest entry is nearest. Grouping by author keeps one person's flood of near-identical
        entries from filling the window and hiding the other people who agree."""
        if self.mirror is not None:
            found = self.mirror.query_groups(
                tenant_id, agent_id, vector, annotators, per_annotator, min_score
            )
            return [Hit(pid, score, payload, ans) for pid, score, payload, ans in found]
        flt = models.Filter(must=[_match("tenant_id", tenant_id), _match("agent_id", agent_id)])
        res = self.client.query_points_groups(self.memory, group_by="annotator_id", query=vector.tolist(),
                                              using="situation", query_filter=flt, limit=annotators,
                                              group_size=per_annotator, score_threshold=min_score,
                                              with_payload=True, with_vectors=["answer"])  # fmt: skip
        out = []
        for g in res.groups:
            for p in g.hits:
                vec = p.vector.get("answer") if isinstance(p.vector, dict) else None
                out.append(Hit(str(p.id), float(p.score), dict(p.payload or {}),
                               np.asarray(vec, np.float32) if vec is not None else None))  # fmt: skip
        return sorted(out, key=lambda h: -h.score)

    def find_entries(self, tenant_id: str, *, annotator_id: str | None = None, event_id: str | None = None,
                     corroborated_by: str | None = None) -> list[tuple[str, dict[str, Any]]]:  # fmt: skip
        must: list[Any] = [_match("tenant_id", tenant_id)]
        should: list[Any] = []
        if annotator_id:
            should.append(_match("annotator_id", annotator_id))
        if event_id:
            should += [_any("source_event_ids", [event_id]), _match("memory_id", event_id)]
        if corroborated_by:
            should.append(_any("corroborated_by", [corroborated_by]))
        if not should:
            return []
        return self._scroll(self.memory, models.Filter(must=must, should=should))

    def delete_entries(self, ids: Sequence[str]) -> None:
        if ids:
            with self.lock:
                self.client.delete(
                    self.memory, points_selector=models.PointIdsList(points=list(ids)), wait=True
                )
                if self.mirror is not None:
                    self.mirror.delete(ids)

    def count_entries(self, tenant_id: str | None = None) -> int:
        flt = models.Filter(must=[_match("tenant_id", tenant_id)]) if tenant_id else None
        with self.lock:
            return int(self.client.count(self.memory, count_filter=flt, exact=True).count)

    def count(self) -> int:
        """Points in the correction memory, all tenants (health and status pages)."""
        return self.count_entries()

    # --- small state collections (payload-only points) ---------------------------------
    def get(self, kind: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        with self.lock:
            recs = self.client.retrieve(
                self.kv[kind], list(dict.fromkeys(ids)), with_payload=True, with_vectors=False
            )
        return {str(r.id): dict(r.payload or {}) for r in recs}

    def put(self, kind: str, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if not items:
            return
        points = [models.PointStruct(id=pid, vector={}, payload=payload) for pid, payload in items]
        with self.lock:
            self.client.upsert(self.kv[kind], points, wait=True)

    def delete(self, kind: str, ids: Sequence[str]) -> None:
        if ids:
            with self.lock:
                self.client.delete(
                    self.kv[kind], points_selector=models.PointIdsList(points=list(ids)), wait=True
                )

    def find(
        self, kind: str, tenant_id: str | None = None, **any_of: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """Points of ``kind`` (of one tenant) whose field matches or, for lists, contains the value;
        several fields are OR-ed."""
        must: list[Any] = [_match("tenant_id", tenant_id)] if tenant_id else []
        should: list[Any] = [_any(k, [v]) for k, v in any_of.items() if v]
        if any_of and not should:
            return []
        return self._scroll(self.kv[kind], models.Filter(must=must or None, should=should or None))

    def _scroll(self, collection: str, flt: models.Filter) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        offset: Any = None
        with self.lock:
            while True:
                recs, offset = self.client.scroll(collection, scroll_filter=flt, limit=512, offset=offset,
                                                  with_payload=True, with_vectors=False)  # fmt: skip
                out += [(str(r.id), dict(r.payload or {})) for r in recs]
                if offset is None:
                    return out


__all__ = ["Hit", "MemoryStore", "open_client"]
