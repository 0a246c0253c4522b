"""Ground-truth bookkeeping: what really happened, to judge what the system learned.

The simulator knows which answers were right; hfloop has to infer it from behaviour and
feedback. These numbers are the yardstick the demo report and the end-to-end test use.

The headline number is the *repeat-error rate on paraphrased recurring questions*: for each
intent, the error rate of the requests before the first (genuine) correction of that intent
was published, against the requests after it. If the fast loop works, later paraphrases
find the correction in memory and the rate falls.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hfloop.simulate.world import World


@dataclass(frozen=True)
class Answered:
    t: float  # seconds since the simulation started
    intent: str
    agent_id: str
    route: str
    model_id: str
    right: bool
    model_right: bool  # whether the model's own answer (without memory) was right: the counterfactual
    memory_used: bool
    doc_ids: tuple[str, ...]
    turn: int
    routing_action: str


def _rate(n: int, errors: int) -> dict[str, Any]:
    return {"n": n, "errors": errors, "rate": round(errors / n, 4) if n else None}


class GroundTruth:
    def __init__(self, world: World) -> None:
        self.world = world
        self.answers: list[Answered] = []
        self.conversations = 0
        self.first_correction: dict[str, float] = {}
        self.events: Counter[str] = Counter()
        self._ratings: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # pool -> [n, agree]
        self._prefs: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # pool -> [n, agree, ties]

    # --- recording ------------------------------------------------------------------------------
    def answered(self, a: Answered) -> None:
        self.answers.append(a)

    def emitted(self, t: float, method: str, kwargs: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        """Count one published event; note first corrections and raters' agreement with the truth."""
        if method == "log_interaction":
            self.events["interaction"] += 1
        elif method == "signal":
            self.events[f"outcome.{str(kwargs['kind']).upper()}"] += 1
        else:
            kind = {
                "rate": "RATING",
                "correct": "CORRECTION",
                "prefer": "PREFERENCE",
                "demonstrate": "DEMONSTRATION",
            }.get(method, method.upper())
            self.events[f"feedback.{kind}"] += 1
        if method == "correct" and meta.get("genuine", True):
            self.first_correction.setdefault(str(meta["intent"]), t)
        if method == "rate" and "pool" in meta:
            r = self._ratings[str(meta["pool"])]
            r[0] += 1
            r[1] += bool(meta["agrees"])
        if method == "prefer" and "pool" in meta:
            p = self._prefs[str(meta["pool"])]
            p[0] += 1
            if meta["agrees"] is None:
                p[2] += 1
            else:
                p[1] += bool(meta["agrees"])

    # --- the summary ------------------------------------------------------------------------------
    def repeat_error(self, grace_s: float = 0.0) -> dict[str, Any]:
        """Errors on each intent before vs after its first correction, pooled over the corrected intents.

        ``reduction`` compares the errors after with the errors expected at each intent's own
        error rate before (direct standardization): pooling raw rates would mix intents
        corrected early (frequent errors) with intents corrected late (rare errors) and
        mislead. ``counterfactual`` compares them with the errors the model itself would have
        made without the memory. ``grace_s`` after a first correction is left out (the time
        the pipeline needs to make it searchable).
        """
        per: dict[str, dict[str, Any]] = {}
        before, after, uncorrected = [0, 0], [0, 0], [0, 0]
        expected = model_errors = 0.0
        for intent in self.world.intents:
            rows = [a for a in self.answers if a.intent == intent.id]
            fc = self.first_correction.get(intent.id)
            if fc is None:
                uncorrected[0] += len(rows)
                uncorrected[1] += sum(not a.right for a in rows)
                continue
            b = [a for a in rows if a.t < fc]
            f = [a for a in rows if a.t >= fc + grace_s]
            b_err, f_err = sum(not a.right for a in b), sum(not a.right for a in f)
            per[intent.id] = {
                "first_correction_s": round(fc, 2),
                "before": _rate(len(b), b_err),
                "after": _rate(len(f), f_err),
                "after_memory_used": sum(a.memory_used for a in f),
                "after_model_errors": sum(not a.model_right for a in f),
            }
            before[0] += len(b)
            before[1] += b_err
            after[0] += len(f)
            after[1] += f_err
            if b:
                expected += b_err / len(b) * len(f)
            model_errors += sum(not a.model_right for a in f)
        naive = before[1] / before[0] if before[0] else 0.0
        return {
            "before": _rate(*before),
            "after": _rate(*after),
            "after_expected_errors": round(expected, 2),
            "reduction": round(1 - after[1] / expected, 4) if expected else None,
            "counterfactual": {
                "model_errors": round(model_errors),
                "reduction": round(1 - after[1] / model_errors, 4) if model_errors else None,
            },
            "naive_reduction": round(1 - (after[1] / after[0]) / naive, 4) if naive and after[0] else None,
            "grace_s": grace_s,
            "intents_corrected": len(per),
            "uncorrected": _rate(*uncorrected),
            "per_intent": per,
        }

    def _timeline(self, rows: list[Answered], edges: list[float]) -> list[dict[str, Any]]:
        out = []
        for t0, t1 in zip(edges, edges[1:], strict=False):
            part = [a for a in rows if t0 <= a.t < t1 or (t1 == edges[-1] and a.t == t1)]
            fallback = sum(a.routing_action == "FALLBACK_MODEL" for a in part)
            out.append(
                {
                    "t0": round(t0, 1),
                    "t1": round(t1, 1),
                    **_rate(len(part), sum(not a.right for a in part)),
                    "fallback_share": round(fallback / len(part), 4) if part else None,
                }
            )
        return out

    def summary(self, *, grace_s: float = 0.0, buckets: int = 6) -> dict[str, Any]:
        answers = self.answers
        end = max((a.t for a in answers), default=0.0)
        edges = [end * k / buckets for k in range(buckets + 1)] if end > 0 else [0.0, 0.0]
        routes: dict[str, Any] = {}
        for route in sorted({a.route for a in answers}):
            rows = [a for a in answers if a.route == route]
            models = {
                m: _rate(len(r), sum(not a.right for a in r))
                for m in sorted({a.model_id for a in rows})
                for r in [[a for a in rows if a.model_id == m]]
            }
            routes[route] = {
                **_rate(len(rows), sum(not a.right for a in rows)),
                "models": models,
                "timeline": self._timeline(rows, edges),
            }
        stale = set(self.world.stale_docs())
        docs: dict[str, Any] = {}
        for a in answers:
            for d in a.doc_ids:
                e = docs.setdefault(d, {"used": 0, "errors": 0, "stale": d in stale})
                e["used"] += 1
                e["errors"] += not a.right
        for e in docs.values():
            e["bad_share"] = round(e["errors"] / e["used"], 4)
        with_memory = [a for a in answers if a.memory_used]
        pools: dict[str, Any] = {}
        for name in sorted(set(self._ratings) | set(self._prefs)):
            r, p = self._ratings.get(name, [0, 0]), self._prefs.get(name, [0, 0, 0])
            decided = p[0] - p[2]
            pools[name] = {
                "ratings": r[0],
                "rating_accuracy": round(r[1] / r[0], 4) if r[0] else None,
                "preferences": p[0],
                "preference_accuracy": round(p[1] / decided, 4) if decided else None,
                "ties": p[2],
                "biased": bool(name in self.world.pools and self.world.pools[name].biased),
            }
        return {
            "conversations": self.conversations,
            "interactions": len(answers),
            "error_rate": _rate(len(answers), sum(not a.right for a in answers)),
            "timeline": self._timeline(answers, edges),
            "repeat_error": self.repeat_error(grace_s),
            "routes": routes,
            "docs": dict(sorted(docs.items())),
            "memory": {
                "answers_with_memory": len(with_memory),
                "right": sum(a.right for a in with_memory),
                "wrong": sum(not a.right for a in with_memory),
            },
            "events": dict(sorted(self.events.items())),
            "events_total": sum(self.events.values()),
            "pools": pools,
            "planted": self.world.planted(),
        }
