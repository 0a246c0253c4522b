"""In-memory mirror of the correction memory, used for searches when Qdrant is embedded.

Embedded Qdrant (local mode) evaluates a payload filter in Python, point by point: a tenant-
and agent-filtered search over 2,000 points took ~30 ms and grew linearly, which breaks the
search latency budget long before the collection is large. The embedded folder belongs to
one process anyway, so that process can keep the vectors and the few filtered fields in
numpy arrays and answer with one masked matrix product. Qdrant stays the durable store: every
write goes there first, and the mirror is rebuilt from it when the store opens. A Qdrant
server does not need this (it filters with its payload indexes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

FIELDS = ("tenant_id", "agent_id", "route", "annotator_id")


class _Codes:
    """Interns strings as small ints so filters compare integer arrays."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def code(self, value: str) -> int:
        return self._ids.setdefault(value, len(self._ids))

    def get(self, value: str) -> int:
        return self._ids.get(value, -1)


class MemoryMirror:
    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self.lock = threading.Lock()
        self._pos: dict[str, int] = {}
        self._ids: list[str] = []
        self._payloads: list[dict[str, Any]] = []
        self._sit = np.zeros((capacity, dim), np.float32)
        self._ans = np.zeros((capacity, dim), np.float32)
        self._codes = _Codes()
        self._cols = {f: np.full(capacity, -1, np.int64) for f in FIELDS}
        self._shared = np.zeros(capacity, bool)
        self._alive = np.zeros(capacity, bool)

    def __len__(self) -> int:
        return int(self._alive[: len(self._ids)].sum())

    def _grow(self) -> None:
        cap = self._sit.shape[0] * 2
        for name in ("_sit", "_ans"):
            old = getattr(self, name)
            new = np.zeros((cap, self.dim), np.float32)
            new[: old.shape[0]] = old
            setattr(self, name, new)
        for f, col in self._cols.items():
            self._cols[f] = np.concatenate([col, np.full(cap - col.shape[0], -1, np.int64)])
        self._shared = np.concatenate([self._shared, np.zeros(cap - self._shared.shape[0], bool)])
        self._alive = np.concatenate([self._alive, np.zeros(cap - self._alive.shape[0], bool)])

    def upsert(self, items: Iterable[tuple[str, np.ndarray, np.ndarray, dict[str, Any]]]) -> None:
        with self.lock:
            for pid, sit, ans, payload in items:
                i = self._pos.get(pid)
                if i is None:
                    if len(self._ids) == self._sit.shape[0]:
                        self._grow()
                    i = len(self._ids)
                    self._pos[pid] = i
                    self._ids.append(pid)
                    self._payloads.append({})
                self._sit[i] = _unit(sit)
                self._ans[i] = _unit(ans)
                self._alive[i] = True
                self._set(i, dict(payload))

    def _set(self, i: int, payload: dict[str, Any]) -> None:
        self._payloads[i] = payload
        for f in FIELDS:
            self._cols[f][i] = self._codes.code(str(payload.get(f) or ""))
        self._shared[i] = payload.get("visibility") == "SHARED"

    def set_payload(self, pid: str, update: dict[str, Any]) -> None:
        with self.lock:
            i = self._pos.get(pid)
            if i is not None and self._alive[i]:
                self._set(i, {**self._payloads[i], **update})

    def delete(self, pids: Iterable[str]) -> None:
        with self.lock:
            for pid in pids:
                i = self._pos.get(pid)
                if i is not None:
                    self._alive[i] = False  # the slot is reused if the same id comes back

    def get(self, pids: Iterable[str]) -> dict[str, dict[str, Any]]:
        with self.lock:
            out = {}
            for pid in pids:
                i = self._pos.get(pid)
                if i is not None and self._alive[i]:
                    out[pid] = dict(self._payloads[i])
            return out

    def query(self, tenant_id: str, agent_id: str, vector: np.ndarray, limit: int, threshold: float, *,
              user_id: str | None = None, route: str | None = None, any_visibility: bool = False,
              with_answer: bool = False) -> list[tuple[str, float, dict[str, Any], np.ndarray | None]]:  # fmt: skip
        """Top ``limit`` entries with cosine >= ``threshold``, best first, among those of this
        tenant and agent visible to ``user_id`` (or all of them with ``any_visibility``)."""
        with self.lock:
            n = len(self._ids)
            mask = self._of_agent(n, tenant_id, agent_id)
            if mask is None:
                return []
            if route is not None:
                mask &= self._cols["route"][:n] == self._codes.get(route)
            if not any_visibility:
                visible = self._shared[:n].copy()
                if user_id:
                    visible |= self._cols["annotator_id"][:n] == self._codes.get(user_id)
                mask &= visible
            idx, scores = self._scored(mask, vector, threshold)
            top = np.argsort(-scores, kind="stable")[:limit]
            return self._rows(idx, scores, top, with_answer)

    def query_groups(self, tenant_id: str, agent_id: str, vector: np.ndarray, groups: int, group_size: int,
                     threshold: float) -> list[tuple[str, float, dict[str, Any], np.ndarray | None]]:  # fmt: skip
        """Entries of any visibility of this tenant and agent with cosine >= ``threshold``, grouped
        by annotator like Qdrant's ``query_points_groups(group_by="annotator_id")``: the best
        ``group_size`` of each annotator, for the ``groups`` annotators whose best entry is
        nearest; best first overall. With answer vectors (this serves corroboration)."""
        with self.lock:
            n = len(self._ids)
            mask = self._of_agent(n, tenant_id, agent_id)
            if mask is None:
                return []
            mask &= self._cols["annotator_id"][:n] != self._codes.get("")  # Qdrant skips ungroupable points
            idx, scores = self._scored(mask, vector, threshold)
            if idx.size == 0:
                return []
            order = np.argsort(-scores, kind="stable")
            who = self._cols["annotator_id"][idx[order]]
            # Rank of each hit within its annotator's hits (0 = that annotator's best), vectorised:
            # a flood of one author can be thousands of hits and this runs once per new correction.
            by_who = np.argsort(who, kind="stable")
            sorted_who = who[by_who]
            starts = np.flatnonzero(np.r_[True, sorted_who[1:] != sorted_who[:-1]])
            first = np.repeat(starts, np.diff(np.r_[starts, sorted_who.size]))
            rank = np.empty_like(by_who)
            rank[by_who] = np.arange(by_who.size) - first
            # Annotators in the order of their best hit; keep the first ``groups`` of them.
            _, first_seen = np.unique(who, return_index=True)
            chosen = who[np.sort(first_seen)[:groups]]
            top = order[(rank < group_size) & np.isin(who, chosen)]
            return self._rows(idx, scores, top, True)

    def _of_agent(self, n: int, tenant_id: str, agent_id: str) -> np.ndarray | None:
        """Live entries of this tenant and agent (None when there can be none)."""
        t, a = self._codes.get(tenant_id), self._codes.get(agent_id)
        if n == 0 or t < 0 or a < 0:
            return None
        return self._alive[:n] & (self._cols["tenant_id"][:n] == t) & (self._cols["agent_id"][:n] == a)

    def _scored(
        self, mask: np.ndarray, vector: np.ndarray, threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positions, cosine to ``vector``) of the masked entries at or above ``threshold``."""
        idx = np.flatnonzero(mask)
        scores = self._sit[idx] @ _unit(np.asarray(vector, np.float32))
        keep = scores >= threshold
        return idx[keep], scores[keep]

    def _rows(self, idx: np.ndarray, scores: np.ndarray, top: np.ndarray,
              with_answer: bool) -> list[tuple[str, float, dict[str, Any], np.ndarray | None]]:  # fmt: skip
        return [(self._ids[idx[j]], float(scores[j]), dict(self._payloads[idx[j]]),
                 self._ans[idx[j]].copy() if with_answer else None) for j in top]  # fmt: skip


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v
