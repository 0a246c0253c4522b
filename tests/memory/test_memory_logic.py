"""Table tests of the fast loop's pure decisions (no Kafka, no Qdrant)."""

from __future__ import annotations

import random

import pytest

from hfloop.memory import logic as L

P = L.RoutingPolicy(prior_bad=1, prior_good=4, upper=0.5, lower=0.3, min_evidence=8, half_life_s=0)


def run_labels(scores: list[float], p: L.RoutingPolicy = P, start: L.Action = "DEFAULT") -> list[L.Action]:
    """Feed labels one by one; the action after each."""
    c, action, out = L.Counts(), start, []
    for i, s in enumerate(scores):
        c = L.add_label(c, L.is_bad(s), 1.0, 1000 * i, p.half_life_s)
        action = L.decide_route(action, c, p).action
        out.append(action)
    return out


def flips(actions: list[L.Action]) -> int:
    return sum(a != b for a, b in zip(actions, actions[1:], strict=False))


@pytest.mark.parametrize(
    ("scores", "final", "n_flips"),
    [
        ([-1.0] * 7, "DEFAULT", 0),  # bad, but not enough evidence yet
        ([-1.0] * 8, "FALLBACK_MODEL", 1),
        ([-1.0] * 10 + [1.0] * 40, "DEFAULT", 2),  # flips, then recovers
        ([-1.0] * 10 + [1.0] * 5, "FALLBACK_MODEL", 1),  # between the thresholds: stays
        ([1.0] * 50, "DEFAULT", 0),
        ([-0.01] * 8, "FALLBACK_MODEL", 1),  # any negative score counts as bad
        ([0.0] * 20, "DEFAULT", 0),  # zero is not bad
    ],
)
def test_routing_flips_with_hysteresis(scores: list[float], final: str, n_flips: int) -> None:
    actions = run_labels(scores)
    assert actions[-1] == final
    assert flips(["DEFAULT", *actions]) == n_flips


NOISY = L.RoutingPolicy(prior_bad=1, prior_good=4, upper=0.425, lower=0.3, min_evidence=8, half_life_s=10.0)


def alternating(seed: int, n: int = 400) -> list[tuple[float, float]]:
    """Bad, good, bad, good... with jittered confidence: a decayed bad rate that oscillates
    between ~0.41 and ~0.44, right across NOISY.upper."""
    rng = random.Random(seed)
    return [(-1.0 if i % 2 == 0 else 1.0, rng.uniform(0.8, 1.0)) for i in range(n)]


def run_weighted(labels: list[tuple[float, float]], p: L.RoutingPolicy) -> list[L.Action]:
    c, action, out = L.Counts(), "DEFAULT", []
    for i, (score, conf) in enumerate(labels):
        c = L.add_label(c, L.is_bad(score), L.label_weight(conf), 1000 * i, p.half_life_s)
        action = L.decide_route(action, c, p).action
        out.append(action)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_alternating_noise_at_the_threshold_does_not_flap(seed: int) -> None:
    actions = run_weighted(alternating(seed), NOISY)
    assert flips(["DEFAULT", *actions]) <= 1


def test_without_hysteresis_the_same_noise_would_flap() -> None:
    # The control for the test above: with one threshold (lower == upper) the same input flaps.
    one = L.RoutingPolicy(
        prior_bad=1, prior_good=4, upper=0.425, lower=0.425, min_evidence=8, half_life_s=10.0
    )
    assert flips(["DEFAULT", *run_weighted(alternating(0), one)]) > 20


def test_confidence_weights_and_decay() -> None:
    c = L.add_label(L.Counts(), True, L.label_weight(0.5), 0, 60.0)
    assert c.bad == pytest.approx(0.5)
    later = L.decay_to(c, 60_000, 60.0)  # one half-life later
    assert later.bad == pytest.approx(0.25)
    assert L.label_weight(float("nan")) == 0.0 and L.label_weight(3.0) == 1.0


def test_decayed_evidence_flips_back_by_itself() -> None:
    p = L.RoutingPolicy(min_evidence=4, half_life_s=60.0)
    c = L.Counts()
    for i in range(10):
        c = L.add_label(c, True, 1.0, i, p.half_life_s)
    assert L.decide_route("DEFAULT", c, p).action == "FALLBACK_MODEL"
    old = L.decay_to(c, 3_600_000, p.half_life_s)  # an hour of silence: the prior dominates again
    assert L.decide_route("FALLBACK_MODEL", old, p).action == "DEFAULT"


@pytest.mark.parametrize("half_life", [0.0, 30.0, 86_400.0])
def test_removal_is_exact_also_for_late_labels(half_life: float) -> None:
    labels = [(True, 0.7, 5_000), (False, 1.0, 1_000), (True, 0.3, 9_000), (False, 0.9, 2_000)]
    c = L.Counts()
    for bad, w, t in labels:
        c = L.add_label(c, bad, w, t, half_life)
    without = L.Counts()
    for bad, w, t in labels[1:]:
        without = L.add_label(without, bad, w, t, half_life)
    removed = L.add_label(c, True, 0.7, 5_000, half_life, sign=-1)
    without = L.decay_to(without, removed.t_ms, half_life)
    assert removed.bad == pytest.approx(without.bad) and removed.good == pytest.approx(without.good)


@pytest.mark.parametrize(
    ("bad", "good", "expect"),
    [
        (0, 0, 1.0),
        (0, 50, 1.0),
        (1, 4, 1.0),
        (50, 0, pytest.approx(0.1, abs=0.1)),
        (6, 0, pytest.approx(0.509, abs=1e-3)),
    ],
)
def test_doc_weight(bad: float, good: float, expect: object) -> None:
    w = L.doc_weight(L.Counts(bad, good, 0), L.WeightPolicy())
    assert w == expect
    assert 0.1 <= w <= 1.0


def test_weight_publication_threshold() -> None:
    p = L.WeightPolicy(min_change=0.05)
    assert not L.weight_moved(1.0, 0.97, p) and L.weight_moved(1.0, 0.94, p)


T = L.TrustPolicy(trusted_annotators=frozenset({"expert"}), trust_threshold=0.8, corroborating_users=3,
                  situation_similarity=0.8, answer_similarity=0.75)  # fmt: skip


def peer(mid: str, who: str, sit: float = 0.9, ans: float = 0.9, vis: str = "PRIVATE") -> L.Peer:
    return L.Peer(mid, who, vis, sit, ans)


@pytest.mark.parametrize(
    ("annotator", "trust", "peers", "visibility", "promoted"),
    [
        ("u1", 0.0, [], "PRIVATE", ()),
        ("expert", 0.0, [], "SHARED", ("new",)),
        ("u1", 0.9, [], "SHARED", ("new",)),  # high trust from the source
        ("u1", 0.0, [peer("a", "u2")], "PRIVATE", ()),
        ("u1", 0.0, [peer("a", "u2"), peer("b", "u3")], "SHARED", ("new", "a", "b")),
        ("u1", 0.0, [peer("a", "u2"), peer("b", "u2")], "PRIVATE", ()),  # one person twice is one person
        ("u1", 0.0, [peer("a", "u1"), peer("b", "u1")], "PRIVATE", ()),  # nor can one corroborate oneself
        ("u1", 0.0, [peer("a", "u2"), peer("b", "u3", ans=0.2)], "PRIVATE", ()),  # disagrees on the answer
        ("u1", 0.0, [peer("a", "u2"), peer("b", "u3", sit=0.5)], "PRIVATE", ()),  # another situation
        ("u1", 0.0, [peer("a", "expert", vis="SHARED")], "SHARED", ("new",)),  # agrees with a trusted one
        ("u1", 0.0, [peer("a", "u2", vis="SHARED"), peer("b", "u3")], "SHARED", ("new", "b")),
    ],
)
def test_visibility_decisions(annotator: str, trust: float, peers: list[L.Peer], visibility: str,
                              promoted: tuple[str, ...]) -> None:  # fmt: skip
    d = L.decide_visibility("new", annotator, trust, peers, T)
    assert d.visibility == visibility
    assert d.promote == promoted


def test_still_corroborated_after_retraction() -> None:
    assert L.still_corroborated(["a", "b", "c"], set(), T)
    assert not L.still_corroborated(["a", "b", "c"], {"c"}, T)
    assert L.still_corroborated(["a", "expert"], {"a"}, T)


def test_rate_limit_token_bucket_on_event_time() -> None:
    b = None
    allowed = []
    for i in range(5):  # 5 within one second, burst 3
        ok, b = L.take_token(b, 1_000 + i, per_minute=6, burst=3)
        allowed.append(ok)
    assert allowed == [True, True, True, False, False]
    ok, b = L.take_token(b, 1_000 + 10_000, per_minute=6, burst=3)  # 10 s refills one token
    assert ok
    assert L.take_token(None, 0, per_minute=0, burst=0)[0]  # 0 disables the limit


def test_ids_are_deterministic_and_tenant_scoped() -> None:
    assert L.point_id("memory", "t1", "m1") == L.point_id("memory", "t1", "m1")
    assert L.point_id("memory", "t1", "m1") != L.point_id("memory", "t2", "m1")
    assert (
        L.derived_event_id("x", 1, "a") == L.derived_event_id("x", 1, "a") != L.derived_event_id("x", 2, "a")
    )


def test_touches() -> None:
    assert L.touches(["a", "b"], [], {"b"}, set())
    assert L.touches([], ["e1"], set(), {"e1"})
    assert not L.touches(["a"], ["e2"], {"b"}, {"e1"})


@pytest.mark.parametrize(
    "model, assisted, counts",
    [
        ("small-model", False, True),  # the route's own model: evidence
        ("fallback", False, False),  # the fallback's answers while rerouted: not about the route's model
        ("small-model", True, False),  # rewritten by the correction memory: the memory's answer
        ("", False, True),  # unknown model: counted (conservative: can only push towards rerouting)
    ],
)
def test_which_labels_judge_a_route(model, assisted, counts):
    p = L.RoutingPolicy(fallback_target="fallback")
    assert L.judges_route(model, assisted, p) is counts
