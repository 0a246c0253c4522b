"""Label policy, input validation and deterministic ids: pure functions, no Kafka.

A *signal* is one feedback or outcome event reduced to what the label policy needs
(:func:`signal_of`). A label combines the signals of one interaction:

* explicit beats implicit: when explicit signals exist, the score is
  ``(1 - implicit_share) * mean(explicit) + implicit_share * mean(implicit)``, so a
  thumbs-down outweighs any number of copies; without explicit signals the implicit mean
  decides;
* a rating replaces the same annotator's earlier rating (latest event time wins), so an
  annotator changing their mind is not a conflict;
* conflicting explicit signals from different annotators lower the confidence
  (agreement = |sum w*v| / sum w*|v|) instead of cancelling silently;
* confidence grows with evidence: ``1 - exp(-(sum w_explicit + 0.3 * sum w_implicit))``.

Sums run over signals sorted by (event_time, event_id), so the same inputs in any order
give the same floats, the same record and the same id.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hfloop.config import Settings
from hfloop.events.schemas import event_time_problem

Record = dict[str, Any]
Signal = dict[str, Any]  # {"id", "t", "kind", "explicit", "annotator", "value"}

_NS = uuid.UUID("6f1d2b1e-8c57-4c51-9a39-2f6c1e7d4b10")
IMPLICIT_EVIDENCE = 0.3  # an implicit signal is worth this much explicit evidence
CONFLICT_PENALTY = 0.8  # confidence lost at total disagreement of explicit signals
POSITIVE_OUTCOMES = frozenset({"ACCEPTED", "RESOLVED"})
NEGATIVE_OUTCOMES = frozenset({"DELETED", "REPHRASED", "ESCALATED", "REOPENED", "ABANDONED"})
RATING_RANGE = {"THUMBS": (-1.0, 1.0), "STARS5": (1.0, 5.0), "SCORE": (-1.0, 1.0)}


def derived_id(kind: str, *parts: object) -> str:
    """Deterministic event id of a derived record: the same inputs always give the same id."""
    return uuid.uuid5(_NS, "/".join([kind, *(str(p) for p in parts)])).hex


@dataclass(frozen=True)
class LabelPolicy:
    """Weights of the label policy (documented in config.py, ``stream_*`` settings)."""

    weights: Mapping[str, float]
    outcome_values: Mapping[str, float]
    implicit_share: float = 0.25
    implicit_feedback_factor: float = 0.5
    strong: float = 1.0

    @classmethod
    def from_settings(cls, s: Settings) -> LabelPolicy:
        return cls(dict(s.stream_label_weights), dict(s.stream_outcome_values), s.stream_implicit_share,
                   s.stream_implicit_feedback_factor, s.stream_strong_signal)  # fmt: skip

    @classmethod
    def default(cls) -> LabelPolicy:
        return cls.from_settings(Settings.model_construct())

    def weight(self, kind: str) -> float:
        return float(self.weights.get(kind, 1.0))


# --- validation --------------------------------------------------------------------------
def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def invalid_reason(name: str, rec: Record, key: bytes | None) -> str | None:
    """Why a decoded input record cannot be joined (None when it can)."""
    for f in ("event_id", "tenant_id", "interaction_id"):
        if not str(rec.get(f) or "").strip():
            return f"{name}.{f} is empty"
    if key is None or key != str(rec["interaction_id"]).encode():
        return f"{name}: Kafka key {key!r} is not the interaction_id (breaks co-partitioning)"
    if problem := event_time_problem(int(rec.get("event_time") or 0)):
        return f"{name}.event_time {problem}"
    if name == "Interaction":
        if not rec["messages"]:
            return "Interaction.messages is empty"
        if not str(rec["session_id"]).strip():
            return "Interaction.session_id is empty"
        return None
    if name == "Feedback":
        return _feedback_invalid(rec)
    if name == "Outcome":
        if rec["kind"] == "CUSTOM" and not rec.get("custom_kind"):
            return "Outcome.custom_kind is required when kind is CUSTOM"
        v = rec.get("value")
        if v is not None and not (_finite(v) and -1.0 <= v <= 1.0):
            return f"Outcome.value {v!r} is not within [-1, 1]"
        return None
    return f"{name} is not an input record"


def _feedback_invalid(rec: Record) -> str | None:
    kind = rec["kind"]
    if not str(rec.get("annotator_id") or "").strip():
        return "Feedback.annotator_id is empty"
    if kind == "RATING":
        r = rec.get("rating")
        if not r:
            return "Feedback.rating is required when kind is RATING"
        lo, hi = RATING_RANGE[r["scale"]]
        if not (_finite(r["value"]) and lo <= r["value"] <= hi):
            return f"Feedback.rating.value {r['value']!r} is outside {r['scale']} [{lo:g}, {hi:g}]"
        if r["scale"] == "THUMBS" and r["value"] not in (-1.0, 1.0):
            return f"Feedback.rating.value {r['value']!r}: THUMBS is -1 or +1"
    elif kind == "CORRECTION" and not str(rec.get("correction") or "").strip():
        return "Feedback.correction is required when kind is CORRECTION"
    elif kind == "DEMONSTRATION" and not str(rec.get("demonstration") or "").strip():
        return "Feedback.demonstration is required when kind is DEMONSTRATION"
    elif kind == "PREFERENCE":
        c = rec.get("comparison")
        if not c:
            return "Feedback.comparison is required when kind is PREFERENCE"
        if c.get("strength") is not None and not (_finite(c["strength"]) and 0.0 <= c["strength"] <= 1.0):
            return f"Feedback.comparison.strength {c['strength']!r} is not within [0, 1]"
    return None


# --- signals -----------------------------------------------------------------------------
def rating_value(scale: str, value: float) -> float:
    """A rating on its scale mapped to [-1, 1]."""
    if scale == "STARS5":
        return (value - 3.0) / 2.0
    return max(-1.0, min(1.0, value))


def signal_of(name: str, rec: Record, response: str, policy: LabelPolicy) -> Signal | None:
    """The label signal of a validated feedback/outcome record, or None when it carries none.

    ``response`` is the interaction's answer: a comparison counts only when one of its two
    answers is that response.
    """
    explicit = True
    annotator: str | None = None
    if name == "Feedback":
        kind = rec["kind"]
        annotator = rec["annotator_id"]
        explicit = rec.get("source", "EXPLICIT") == "EXPLICIT"
        if kind == "RATING":
            value = rating_value(rec["rating"]["scale"], float(rec["rating"]["value"]))
        elif kind == "CORRECTION":
            value = -1.0
        elif kind == "DEMONSTRATION":
            value = -0.5
        elif kind == "PREFERENCE":
            c = rec["comparison"]
            if c["choice"] == "TIE" or c["response_a"] == c["response_b"]:
                return None
            chosen, rejected = (
                (c["response_a"], c["response_b"])
                if c["choice"] == "A"
                else (c["response_b"], c["response_a"])
            )
            strength = 1.0 if c.get("strength") is None else float(c["strength"])
            if response == chosen:
                value = strength
            elif response == rejected:
                value = -strength
            else:
                return None
        else:  # COMMENT: lineage only, no score
            return None
    else:
        kind = rec["kind"]
        explicit = False
        v = rec.get("value")
        if kind == "CUSTOM":
            if v is None:
                return None
            value = float(v)
        elif kind == "EDITED" and v is not None:
            value = -abs(float(v))  # share of the answer the user had to change
        else:
            value = float(policy.outcome_values.get(kind, 0.0))
    return {"id": rec["event_id"], "t": int(rec["event_time"]), "kind": kind, "explicit": explicit,
            "annotator": annotator, "value": max(-1.0, min(1.0, value))}  # fmt: skip


def signal_weight(sig: Signal, policy: LabelPolicy) -> float:
    w = policy.weight(sig["kind"])
    if sig["annotator"] is not None and not sig["explicit"]:
        w *= policy.implicit_feedback_factor  # feedback inferred by a judge, not stated by a person
    return w


def is_strong(sig: Signal, policy: LabelPolicy) -> bool:
    return bool(sig["explicit"]) and abs(sig["value"]) * signal_weight(sig, policy) >= policy.strong


def _effective(signals: Iterable[Signal]) -> list[Signal]:
    """Signals in (time, id) order, an annotator's rating/comparison replaced by their latest one."""
    ordered = sorted(signals, key=lambda s: (s["t"], s["id"]))
    latest: dict[tuple[str, str], str] = {}
    for s in ordered:
        if s["annotator"] is not None and s["kind"] in ("RATING", "PREFERENCE"):
            latest[(s["annotator"], s["kind"])] = s["id"]
    return [s for s in ordered
            if s["annotator"] is None or s["kind"] not in ("RATING", "PREFERENCE")
            or latest[(s["annotator"], s["kind"])] == s["id"]]  # fmt: skip


@dataclass(frozen=True)
class Score:
    score: float
    confidence: float
    n_explicit: int
    n_implicit: int


def score(signals: Sequence[Signal], policy: LabelPolicy) -> Score | None:
    """Combined score and confidence of an interaction's signals (None without signals)."""
    eff = _effective(signals)
    if not eff:
        return None
    ex = [(s["value"], signal_weight(s, policy)) for s in eff if s["explicit"]]
    im = [(s["value"], signal_weight(s, policy)) for s in eff if not s["explicit"]]

    def mean(xs: list[tuple[float, float]]) -> float:
        total = sum(w for _, w in xs)
        return sum(v * w for v, w in xs) / total if total > 0 else 0.0

    if ex and im:
        value = (1.0 - policy.implicit_share) * mean(ex) + policy.implicit_share * mean(im)
    else:
        value = mean(ex or im)
    evidence = sum(w for _, w in ex) + IMPLICIT_EVIDENCE * sum(w for _, w in im)
    confidence = 1.0 - math.exp(-evidence)
    graded = ex or im  # disagreement among the signals that decide the score
    mass = sum(w * abs(v) for v, w in graded)
    agreement = abs(sum(w * v for v, w in graded)) / mass if mass > 0 else 1.0
    penalty = CONFLICT_PENALTY if ex else CONFLICT_PENALTY / 2
    confidence *= 1.0 - penalty * (1.0 - agreement)
    return Score(round(max(-1.0, min(1.0, value)), 6), round(max(0.0, min(1.0, confidence)), 6),
                 len(ex), len(im))  # fmt: skip


def build_label(inter: Record, signals: Sequence[Signal], policy: LabelPolicy, trigger: str) -> Record | None:
    """The Label record of an interaction and all its joined signals (None without signals).

    ``version`` is the number of signals joined so far: it grows with every revision, and a
    replay that sees the same inputs produces the same version, content and id.
    """
    sc = score(signals, policy)
    if sc is None:
        return None
    contributing = sorted({inter["event_id"], *(s["id"] for s in signals)})
    annotators = sorted({s["annotator"] for s in signals if s["annotator"] is not None and s["explicit"]})
    return {
        "event_id": derived_id("label", inter["tenant_id"], inter["interaction_id"], *contributing),
        "tenant_id": inter["tenant_id"],
        "event_time": max([int(inter["event_time"]), *(s["t"] for s in signals)]),
        "interaction_id": inter["interaction_id"],
        "version": len(signals),
        "score": sc.score,
        "confidence": sc.confidence,
        "trigger": trigger,
        "agent_id": inter["agent_id"],
        "agent_version": inter["agent_version"],
        "model_id": inter["model_id"],
        "route": inter["route"],
        "session_id": inter["session_id"],
        "user_id": inter["user_id"],
        "n_explicit": sc.n_explicit,
        "n_implicit": sc.n_implicit,
        "retrieved_doc_ids": list(inter.get("retrieved_doc_ids") or []),
        "memory_ids_used": list(inter.get("memory_ids_used") or []),
        "annotator_ids": annotators,
        "contributing_event_ids": contributing,
    }


def polarity(outcome_kinds: Iterable[str]) -> int:
    """+1 accepted (ACCEPTED/RESOLVED and nothing negative), -1 rejected, 0 neither or both."""
    kinds = set(outcome_kinds)
    pos, neg = bool(kinds & POSITIVE_OUTCOMES), bool(kinds & NEGATIVE_OUTCOMES)
    return 1 if pos and not neg else -1 if neg and not pos else 0
