"""The fast loop's decisions, as pure functions (no Kafka, no Qdrant, no clock).

* ids: Qdrant point ids derived from the source ids, so every write is idempotent;
* decayed counts: bad/good evidence that fades with a half-life, with exact removal of one
  label's contribution (label revisions and retractions need it);
* routing: a Beta posterior of the bad-answer rate per (tenant, agent, route) with hysteresis;
* retrieval weights: a smoothed bad share per document, turned into a score multiplier;
* trust: when a private correction may be served to everyone (corroboration), and a
  per-annotator token bucket.

Everything takes explicit times (epoch ms from the events), so a replay decides the same.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

_NS = uuid.UUID("5b0f3c8e-6d0a-4d1e-9a57-3c1f0e7f9a11")

Action = Literal["DEFAULT", "FALLBACK_MODEL", "HUMAN"]


# --- ids ---------------------------------------------------------------------------------
def point_id(kind: str, tenant_id: str, *parts: str) -> str:
    """Deterministic Qdrant point id (a UUID) of a tenant-scoped key; replays hit the same point."""
    return str(uuid.uuid5(_NS, "/".join((kind, tenant_id, *parts))))


def derived_event_id(kind: str, *parts: object) -> str:
    """Deterministic id of an event this wing emits, so a redelivery deduplicates downstream."""
    return uuid.uuid5(_NS, "/".join((kind, *(str(p) for p in parts)))).hex


# --- decayed counts ----------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """Bad/good evidence decayed to ``t_ms``; a label of weight w at time t counts
    ``w * 2 ** (-(t_ms - t) / half_life)`` now."""

    bad: float = 0.0
    good: float = 0.0
    t_ms: int = 0

    @property
    def n(self) -> float:
        return self.bad + self.good


def _factor(dt_ms: float, half_life_s: float) -> float:
    if half_life_s <= 0:
        return 1.0
    return float(2.0 ** (-(dt_ms / 1000.0) / half_life_s))


def decay_to(c: Counts, t_ms: int, half_life_s: float) -> Counts:
    """Counts as seen at ``t_ms`` (never moves backwards: late events are folded in instead)."""
    if t_ms <= c.t_ms:
        return c
    f = _factor(t_ms - c.t_ms, half_life_s)
    return Counts(c.bad * f, c.good * f, t_ms)


def add_label(c: Counts, bad: bool, weight: float, t_ms: int, half_life_s: float, sign: int = 1) -> Counts:
    """Add (sign=+1) or remove (sign=-1) one label's contribution; removal is exact up to rounding."""
    c = decay_to(c, t_ms, half_life_s)
    w = sign * weight * _factor(c.t_ms - t_ms, half_life_s)
    if bad:
        return replace(c, bad=max(0.0, c.bad + w))
    return replace(c, good=max(0.0, c.good + w))


def is_bad(score: float) -> bool:
    """A label counts as bad when its combined score is negative."""
    return score < 0.0


def label_weight(confidence: float) -> float:
    """How much one label counts: its confidence, clamped to [0, 1] (NaN counts nothing)."""
    if math.isnan(confidence):
        return 0.0
    return min(1.0, max(0.0, confidence))


# --- routing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RoutingPolicy:
    prior_bad: float = 1.0
    prior_good: float = 4.0
    upper: float = 0.5  # flip to the fallback when the posterior mean reaches this ...
    lower: float = 0.3  # ... and back only once it falls to this (hysteresis)
    min_evidence: float = 8.0  # decayed labels needed before flipping away from DEFAULT
    half_life_s: float = 86_400.0
    fallback_action: Action = "FALLBACK_MODEL"
    fallback_target: str | None = "fallback"


def bad_rate(c: Counts, p: RoutingPolicy) -> float:
    """Posterior mean of the bad-answer rate under a Beta(prior_bad, prior_good) prior."""
    return (p.prior_bad + c.bad) / (p.prior_bad + p.prior_good + c.n)


@dataclass(frozen=True)
class RoutingDecision:
    action: Action
    target: str | None
    changed: bool
    reason: str


def judges_route(model_id: str, memory_assisted: bool, p: RoutingPolicy) -> bool:
    """Whether a label is evidence about a route's own model.

    Answers the fallback gave while a route was rerouted say nothing about the model the
    route normally uses; counting them would flip the route back as soon as the fallback
    did well, and then forward again (slow flapping). Without them, the primary model's
    evidence ages (half-life) toward the prior and the route returns to it over time.
    Answers the correction memory rewrote are the memory's, not the model's: counting them
    would hide a bad model behind the corrections served on top of it."""
    if memory_assisted:
        return False
    return not (p.fallback_target and model_id == p.fallback_target)


def decide_route(current: Action, c: Counts, p: RoutingPolicy) -> RoutingDecision:
    """Next routing action for a route whose current action is ``current``.

    Two thresholds (upper > lower) make the rule sticky: noise around either threshold
    cannot flip it back and forth, only a sustained move across the gap can.
    """
    rate = bad_rate(c, p)
    if current == "DEFAULT":
        if rate >= p.upper and c.n >= p.min_evidence:
            why = f"bad rate {rate:.3f} >= {p.upper} over {c.n:.1f} labels"
            return RoutingDecision(p.fallback_action, p.fallback_target, True, why)
        return RoutingDecision("DEFAULT", None, False, "below upper threshold or too little evidence")
    if rate <= p.lower:
        return RoutingDecision("DEFAULT", None, True, f"bad rate {rate:.3f} <= {p.lower}: recovered")
    return RoutingDecision(current, p.fallback_target, False, "above lower threshold")


# --- retrieval weights -------------------------------------------------------------------
@dataclass(frozen=True)
class WeightPolicy:
    prior_bad: float = 1.0
    prior_good: float = 4.0
    half_life_s: float = 7 * 86_400.0
    floor: float = 0.1  # a document is demoted, never removed: the agent may still need it
    min_change: float = 0.05  # publish only moves at least this large


def bad_share(c: Counts, p: WeightPolicy) -> float:
    """Smoothed share of bad answers among labeled interactions that retrieved the doc."""
    return (p.prior_bad + c.bad) / (p.prior_bad + p.prior_good + c.n)


def doc_weight(c: Counts, p: WeightPolicy) -> float:
    """Retrieval score multiplier in [floor, 1]: 1.0 at (or better than) the prior bad share,
    falling linearly to the floor as the bad share goes to 1."""
    prior = p.prior_bad / (p.prior_bad + p.prior_good)
    share = bad_share(c, p)
    if share <= prior:
        return 1.0
    return max(p.floor, 1.0 - (share - prior) / (1.0 - prior) * (1.0 - p.floor))


def weight_moved(last_published: float, new: float, p: WeightPolicy) -> bool:
    return abs(new - last_published) >= p.min_change


# --- trust and corroboration ---------------------------------------------------------------
@dataclass(frozen=True)
class TrustPolicy:
    trusted_annotators: frozenset[str] = frozenset()
    trust_threshold: float = 0.8  # an entry arriving with trust >= this is shared at once
    corroborating_users: int = 3  # distinct annotators agreeing that make an entry shared
    situation_similarity: float = 0.8  # "similar correction": situation and answer both close
    answer_similarity: float = 0.75


@dataclass(frozen=True)
class Peer:
    """An existing entry near a new one (same tenant and agent)."""

    memory_id: str
    annotator_id: str
    visibility: str
    situation_score: float
    answer_score: float


def is_trusted(annotator_id: str, trust: float, p: TrustPolicy) -> bool:
    return annotator_id in p.trusted_annotators or trust >= p.trust_threshold


def agreeing(peers: Iterable[Peer], p: TrustPolicy) -> list[Peer]:
    """Peers that say the same thing about the same situation."""
    return [
        x
        for x in peers
        if x.situation_score >= p.situation_similarity and x.answer_score >= p.answer_similarity
    ]


@dataclass(frozen=True)
class TrustDecision:
    visibility: Literal["PRIVATE", "SHARED"]
    promote: tuple[str, ...]  # memory ids (the new one included) that become SHARED now
    corroborated_by: tuple[str, ...]  # distinct annotators behind the decision
    reason: str


def decide_visibility(
    memory_id: str, annotator_id: str, trust: float, peers: Sequence[Peer], p: TrustPolicy,
    trusted_peer_annotators: frozenset[str] = frozenset(),
) -> TrustDecision:  # fmt: skip
    """Visibility of a new entry given the agreeing entries around it.

    A single person cannot make their correction everyone's answer: it stays PRIVATE (served
    to its author only) until a trusted annotator agrees, or enough distinct people do. When
    that happens every private member of the agreeing group is promoted with it.
    """
    group = agreeing(peers, p)
    users = sorted({annotator_id, *(x.annotator_id for x in group)})
    trusted_here = is_trusted(annotator_id, trust, p) or any(
        x.annotator_id in p.trusted_annotators or x.annotator_id in trusted_peer_annotators for x in group
    )
    if trusted_here or len(users) >= p.corroborating_users:
        promote = tuple([memory_id] + [x.memory_id for x in group if x.visibility != "SHARED"])
        why = "trusted annotator" if trusted_here else f"corroborated by {len(users)} distinct annotators"
        return TrustDecision("SHARED", promote, tuple(users), why)
    return TrustDecision(
        "PRIVATE", (), tuple(users), f"{len(users)} of {p.corroborating_users} annotators agree"
    )


def still_corroborated(corroborated_by: Iterable[str], removed: set[str], p: TrustPolicy) -> bool:
    """After retraction of ``removed`` annotators, does a shared entry keep enough support?"""
    left = {a for a in corroborated_by if a not in removed}
    return any(a in p.trusted_annotators for a in left) or len(left) >= p.corroborating_users


# --- rate limit ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Bucket:
    tokens: float
    t_ms: int


def take_token(b: Bucket | None, t_ms: int, per_minute: float, burst: float) -> tuple[bool, Bucket]:
    """Token bucket on event time (so a replay limits the same records): returns (allowed, bucket)."""
    if per_minute <= 0:
        return True, Bucket(burst, t_ms)
    if b is None:
        b = Bucket(burst, t_ms)
    refill = max(0, t_ms - b.t_ms) / 60_000.0 * per_minute
    tokens = min(burst, b.tokens + refill)
    t = max(t_ms, b.t_ms)
    if tokens >= 1.0:
        return True, Bucket(tokens - 1.0, t)
    return False, Bucket(tokens, t)


# --- retraction ----------------------------------------------------------------------------
def touches(annotators: Iterable[str], event_ids: Iterable[str], retracted_annotators: set[str],
            retracted_events: set[str]) -> bool:  # fmt: skip
    """Whether a record came (partly) from a retracted annotator or event."""
    return not retracted_annotators.isdisjoint(annotators) or not retracted_events.isdisjoint(event_ids)


__all__ = [
    "Action", "Bucket", "Counts", "Peer", "RoutingDecision", "RoutingPolicy", "TrustDecision", "TrustPolicy",
    "WeightPolicy", "add_label", "agreeing", "bad_rate", "bad_share", "decay_to", "decide_route",
    "decide_visibility", "derived_event_id", "doc_weight", "is_bad", "is_trusted", "label_weight", "point_id",
    "still_corroborated", "take_token", "touches", "weight_moved",
]  # fmt: skip
