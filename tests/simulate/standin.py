"""IN-MEMORY STAND-IN for hfloop's fast loop — NOT the real system.

It lets the simulator's own tests close the loop without Kafka, the stream processors or
the memory API: it receives the world's emissions (as a sink) and answers the agent's
lookups (as a lookup), learning only from those events, never from ground truth. Its
rules are deliberately naive. The real closed loop is tested end to end by the lead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hfloop.simulate import MemoryHit, RouteRule

BAD = {"REPHRASED", "ESCALATED", "ABANDONED", "REOPENED"}
GOOD = {"ACCEPTED", "COPIED", "RESOLVED"}


class InMemoryHfloop:
    def __init__(self, embed: Callable[[list[str]], np.ndarray], *, fallback: str = "large-model",
                 route_min: int = 15, route_bad: float = 0.4, doc_min: int = 8, doc_bad: float = 0.5) -> None:  # fmt: skip
        self.embed = embed
        self.fallback, self.route_min, self.route_bad = fallback, route_min, route_bad
        self.doc_min, self.doc_bad = doc_min, doc_bad
        self.interactions: dict[str, Mapping[str, Any]] = {}
        self.waiting: dict[str, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
        self.labelled: set[str] = set()
        self.memory: list[tuple[str, str, np.ndarray, str]] = []  # (memory_id, agent_id, vector, answer)
        self.route_stats: dict[tuple[str, str], list[int]] = defaultdict(
            lambda: [0, 0]
        )  # (agent, route) -> [bad, n]
        self.doc_stats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.routes: dict[str, dict[str, RouteRule]] = defaultdict(dict)
        self.weights: dict[str, float] = {}
        self._vectors: dict[str, np.ndarray] = {}

    def prefetch(self, texts: Sequence[str]) -> None:
        """Embed texts in one batch ahead of time (a batch is several times faster than one by one)."""
        todo = sorted(set(texts) - set(self._vectors))
        for text, vec in zip(todo, self.embed(todo) if todo else [], strict=True):
            self._vectors[text] = vec

    def _vec(self, text: str) -> np.ndarray:
        if text not in self._vectors:
            self._vectors[text] = self.embed([text])[0]
        return self._vectors[text]

    # --- as a sink ---------------------------------------------------------------------------------
    def emit(self, method: str, kw: Mapping[str, Any]) -> None:
        iid = kw["interaction_id"]
        if method == "log_interaction":
            self.interactions[iid] = kw
            for m, k in self.waiting.pop(iid, []):
                self.emit(m, k)
            return
        inter = self.interactions.get(iid)
        if inter is None:  # feedback before its interaction: the join waits
            self.waiting[iid].append((method, kw))
            return
        if method == "correct":
            situation = inter["prompt"][-1]["content"]
            self.memory.append(
                (f"mem-{len(self.memory)}", inter["agent_id"], self._vec(situation), kw["corrected"])
            )
        elif method == "signal" and iid not in self.labelled and kw["kind"] in BAD | GOOD:
            self.labelled.add(iid)
            self._learn(inter, bad=kw["kind"] in BAD)

    def _learn(self, inter: Mapping[str, Any], bad: bool) -> None:
        agent, route = inter["agent_id"], inter["route"]
        if inter["model_id"] != self.fallback:
            s = self.route_stats[(agent, route)]
            s[0], s[1] = s[0] + bad, s[1] + 1
            if s[1] >= self.route_min and s[0] / s[1] > self.route_bad:
                self.routes[agent][route] = RouteRule("FALLBACK_MODEL", self.fallback)
        if inter["memory_ids_used"]:
            return  # a memory answer says nothing about the documents
        for doc in inter["retrieved_doc_ids"]:
            d = self.doc_stats[doc]
            d[0], d[1] = d[0] + bad, d[1] + 1
            if d[1] >= self.doc_min and d[0] / d[1] > self.doc_bad:
                self.weights[doc] = 0.3

    def tick(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    # --- as the lookup API --------------------------------------------------------------------------
    def memory_search(
        self, text: str, *, agent_id: str, user_id: str, k: int, threshold: float
    ) -> list[MemoryHit]:
        if not self.memory:
            return []
        q = self._vec(text)
        hits = [MemoryHit(mid, float(v @ q), ans) for mid, agent, v, ans in self.memory if agent == agent_id]
        return sorted((h for h in hits if h.score >= threshold), key=lambda h: -h.score)[:k]

    def routing(self, agent_id: str) -> Mapping[str, RouteRule]:
        return dict(self.routes[agent_id])

    def doc_weights(self, doc_ids: Sequence[str]) -> Mapping[str, float]:
        return {d: self.weights.get(d, 1.0) for d in doc_ids}
