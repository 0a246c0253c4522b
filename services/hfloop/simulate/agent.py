"""The simulated support agent: looks things up in hfloop before answering, then answers.

The agent knows only what a real agent would: the user's message, its own route, its
retriever and its model. Whatever it learns from feedback comes back through the
:class:`Lookup` (in production :class:`HttpLookup`, the real lookup API): correction memory,
routing rules and document weights. It never sees the simulator's ground truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any, Protocol

from hfloop.simulate.kb import Doc, Intent
from hfloop.simulate.world import HUMAN_MODEL, World

log = logging.getLogger(__name__)

FALLBACK_MODEL = "FALLBACK_MODEL"
HUMAN = "HUMAN"


@dataclass(frozen=True)
class MemoryHit:
    memory_id: str
    score: float
    answer: str


@dataclass(frozen=True)
class RouteRule:
    action: str  # DEFAULT | FALLBACK_MODEL | HUMAN
    target: str | None = None


class Lookup(Protocol):
    """What the agent asks hfloop before answering."""

    def memory_search(
        self, text: str, *, agent_id: str, user_id: str, k: int, threshold: float
    ) -> list[MemoryHit]: ...

    def routing(self, agent_id: str) -> Mapping[str, RouteRule]: ...

    def doc_weights(self, doc_ids: Sequence[str]) -> Mapping[str, float]: ...


class NullLookup:
    """No hfloop to ask: the open loop (pure load generation, or a baseline run)."""

    def memory_search(
        self, text: str, *, agent_id: str, user_id: str, k: int, threshold: float
    ) -> list[MemoryHit]:
        return []

    def routing(self, agent_id: str) -> Mapping[str, RouteRule]:
        return {}

    def doc_weights(self, doc_ids: Sequence[str]) -> Mapping[str, float]:
        return {}


# --- the real lookup API ------------------------------------------------------------------------
def parse_hits(results: Sequence[Mapping[str, Any]]) -> list[MemoryHit]:
    """Search results of ``POST /v1/memory/search`` (best first) as hits."""
    hits = []
    for r in results:
        raw = r.get("payload")
        payload: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        answer = r.get("corrected_answer") or r.get("answer") or payload.get("corrected_answer")
        memory_id = r.get("memory_id") or r.get("id") or payload.get("memory_id")
        if answer and memory_id and r.get("score") is not None:
            hits.append(MemoryHit(str(memory_id), float(r["score"]), str(answer)))
    return sorted(hits, key=lambda h: -h.score)


def parse_routing(body: Mapping[str, Any]) -> dict[str, RouteRule]:
    """``GET /v1/routing/{agent_id}``: rules per route, as a mapping or a list of rules."""
    rules = body.get("routes", body.get("rules", body))
    items: list[tuple[Any, Any]]
    if isinstance(rules, Mapping):
        items = list(rules.items())
    elif isinstance(rules, list):
        items = [(r.get("route"), r) for r in rules if isinstance(r, Mapping)]
    else:
        items = []
    return {
        str(route): RouteRule(str(r.get("action", "DEFAULT")).upper(), r.get("target"))
        for route, r in items
        if route and isinstance(r, Mapping)
    }


class HttpLookup:
    """Lookups through ``HfloopClient``; routing and weights are cached briefly, as agents do.

    A failed lookup is counted in ``errors`` and answered as "nothing known" so that one slow
    or restarting API does not stop the world; ``strict=True`` raises instead.
    """

    def __init__(
        self,
        client: Any,
        *,
        ttl_s: float = 1.0,
        strict: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.strict = strict
        self.clock = clock
        self.errors = 0
        self.last_error: str | None = None
        self._cache: dict[Any, tuple[float, Any]] = {}

    def _fail(self, what: str, exc: Exception) -> None:
        if self.strict:
            raise exc
        self.errors += 1
        if self.last_error is None:
            log.warning("lookup %s failed (answering without it): %s", what, exc)
        self.last_error = f"{what}: {exc}"

    def _cached(self, key: Any, fetch: Callable[[], Any], empty: Any) -> Any:
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        try:
            value = fetch()
        except Exception as exc:  # noqa: BLE001 - any transport or API error is counted, see class doc
            self._fail(str(key[0]), exc)
            return empty
        self._cache[key] = (now, value)
        return value

    def memory_search(
        self, text: str, *, agent_id: str, user_id: str, k: int, threshold: float
    ) -> list[MemoryHit]:
        try:
            results = self.client.memory.search(
                text, agent_id=agent_id, k=k, threshold=threshold, user_id=user_id
            )
        except Exception as exc:  # noqa: BLE001
            self._fail("memory.search", exc)
            return []
        return parse_hits(results)

    def routing(self, agent_id: str) -> Mapping[str, RouteRule]:
        rules: Mapping[str, RouteRule] = self._cached(
            ("routing", agent_id), lambda: parse_routing(self.client.routing(agent_id)), {}
        )
        return rules

    def doc_weights(self, doc_ids: Sequence[str]) -> Mapping[str, float]:
        if not doc_ids:
            return {}
        weights: Mapping[str, float] = self._cached(
            ("weights", tuple(sorted(doc_ids))),
            lambda: {str(k): float(v) for k, v in self.client.retrieval_weights(list(doc_ids)).items()},
            {},
        )
        return weights


# --- the agent ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentConfig:
    memory_k: int = 3
    memory_threshold: float = 0.55  # from the paraphrase check: same-intent hits, few cross-intent ones
    system_prompt: str = "You are {agent}, a customer-support assistant. Answer from the knowledge base."


@dataclass(frozen=True)
class Turn:
    """One answer of the agent: what it logs (the interaction) plus what it did to get there."""

    interaction_id: str
    agent_id: str
    route: str
    model_id: str
    messages: list[dict[str, str]]
    response: str
    doc_ids: list[str]
    memory_ids: list[str]
    memory_score: float | None
    routing_action: str
    latency_ms: float
    generated: str  # the model's own answer (differs from ``response`` when memory was applied)
    weights: Mapping[str, float] = field(default_factory=dict)

    def interaction_kwargs(
        self, *, session_id: str, user_id: str, agent_version: str, parent: str | None, event_time: int
    ) -> dict[str, Any]:
        """Arguments of ``FeedbackClient.log_interaction`` for this turn."""
        return {
            "agent_id": self.agent_id,
            "prompt": self.messages,
            "response": self.response,
            "interaction_id": self.interaction_id,
            "session_id": session_id,
            "user_id": user_id,
            "agent_version": agent_version,
            "model_id": self.model_id,
            "route": self.route,
            "retrieved_doc_ids": self.doc_ids,
            "memory_ids_used": self.memory_ids,
            "latency_ms": self.latency_ms,
            "prompt_tokens": sum(len(m["content"]) // 4 for m in self.messages),
            "completion_tokens": len(self.response) // 4,
            "parent_interaction_id": parent,
            "event_time": event_time,
        }


class SimAgent:
    def __init__(self, world: World, lookup: Lookup, config: AgentConfig | None = None) -> None:
        self.world = world
        self.lookup = lookup
        self.config = config or AgentConfig()

    def respond(
        self,
        intent: Intent,
        text: str,
        *,
        interaction_id: str,
        user_id: str,
        history: Sequence[Mapping[str, str]],
        rng: Random,
    ) -> Turn:
        """Answer ``text`` (a paraphrase of ``intent``): look up, route, retrieve, generate."""
        c, w = self.config, self.world
        agent_id, route, iid = intent.agent_id, intent.route, interaction_id
        # Draws first, in a fixed order, whatever the lookups say (keeps turns reproducible).
        candidates = w.retrieve(intent, rng)

        hits = self.lookup.memory_search(
            text, agent_id=agent_id, user_id=user_id, k=c.memory_k, threshold=c.memory_threshold
        )
        rule = self.lookup.routing(agent_id).get(route, RouteRule("DEFAULT"))
        if rule.action == FALLBACK_MODEL:
            model = rule.target or w.config.fallback_model
        elif rule.action == HUMAN:
            model = HUMAN_MODEL
        else:
            model = w.config.primary_model
        weights = self.lookup.doc_weights([d.id for d, _ in candidates])
        ranked = sorted(candidates, key=lambda ds: -ds[1] * float(weights.get(ds[0].id, 1.0)))
        top: Doc | None = ranked[0][0] if ranked else None
        generated = w.model_answer(intent, model, top, rng)

        best = hits[0] if hits and hits[0].score >= c.memory_threshold else None
        response = best.answer if best else generated
        messages = [
            {"role": "system", "content": c.system_prompt.format(agent=agent_id)},
            *history,
            {"role": "user", "content": text},
        ]
        latency = {w.config.primary_model: 400.0, HUMAN_MODEL: 60_000.0}.get(model, 1200.0) * rng.uniform(
            0.7, 1.5
        )
        return Turn(
            interaction_id=iid,
            agent_id=agent_id,
            route=route,
            model_id=model,
            messages=[dict(m) for m in messages],
            response=response,
            doc_ids=[top.id] if top else [],
            memory_ids=[best.memory_id] if best else [],
            memory_score=best.score if best else None,
            routing_action=rule.action,
            latency_ms=round(latency, 1),
            generated=generated,
            weights=dict(weights),
        )
