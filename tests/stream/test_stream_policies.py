"""Label and pair policies, validation and the join state machine: table-driven, hypothesis
where order or arbitrary values matter. No Kafka."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_scenario import A1, A2, FIX, Q1, scripted_session

from hfloop.sdk import events as ev
from hfloop.stream import pairs as pr
from hfloop.stream import state as sm
from hfloop.stream.logic import (
    LabelPolicy,
    build_label,
    invalid_reason,
    is_strong,
    polarity,
    score,
    signal_of,
)

POLICY = LabelPolicy.default()
PAIRS = pr.PairPolicy.default()
CTX = sm.Ctx(POLICY, PAIRS, window_s=10, grace_s=60, ttl_s=3600)
INTER = ev.interaction(tenant_id="t", agent_id="a", prompt=Q1, response=A1, interaction_id="i1", event_id="e-i1",
                       event_time=1000, session_id="s")  # fmt: skip


def fb(kind: str, annotator: str = "u1", t: int = 2000, eid: str | None = None, **kw) -> dict:
    return ev.feedback(tenant_id="t", interaction_id="i1", kind=kind, annotator_id=annotator, event_time=t,
                       event_id=eid or f"f-{kind}-{annotator}-{t}", **kw)  # fmt: skip


def oc(kind: str, t: int = 2000, eid: str | None = None, **kw) -> dict:
    return ev.outcome(
        tenant_id="t", interaction_id="i1", kind=kind, event_time=t, event_id=eid or f"o-{kind}-{t}", **kw
    )


def sig(rec: dict) -> dict:
    name = "Outcome" if "custom_kind" in rec else "Feedback"
    s = signal_of(name, rec, A1, POLICY)
    assert s is not None
    return s


THUMBS_UP, THUMBS_DOWN = {"scale": "THUMBS", "value": 1.0}, {"scale": "THUMBS", "value": -1.0}

# (name, signals, expected sign of the score)
SIGN_CASES = [
    ("thumbs up", [fb("RATING", rating=THUMBS_UP)], 1),
    ("thumbs down", [fb("RATING", rating=THUMBS_DOWN)], -1),
    ("five stars", [fb("RATING", rating={"scale": "STARS5", "value": 5.0})], 1),
    ("one star", [fb("RATING", rating={"scale": "STARS5", "value": 1.0})], -1),
    ("score", [fb("RATING", rating={"scale": "SCORE", "value": -0.4})], -1),
    ("correction", [fb("CORRECTION", correction=FIX)], -1),
    ("demonstration", [fb("DEMONSTRATION", demonstration=FIX)], -1),
    ("comparison won", [fb("PREFERENCE", comparison={"response_a": A1, "response_b": "x", "choice": "A"})], 1),
    ("comparison lost", [fb("PREFERENCE", comparison={"response_a": A1, "response_b": "x", "choice": "B"})], -1),
    *[(kind.lower(), [oc(kind)], 1 if kind in ("ACCEPTED", "COPIED", "RESOLVED") else -1)
      for kind in ("ACCEPTED", "COPIED", "RESOLVED", "EDITED", "DELETED", "REPHRASED", "ESCALATED", "REOPENED",
                   "ABANDONED")],
    ("custom positive", [oc("CUSTOM", custom_kind="thanked", value=0.7)], 1),
    ("edited a lot", [oc("EDITED", value=0.9)], -1),
    ("explicit beats implicit: thumbs down vs copy", [fb("RATING", rating=THUMBS_DOWN), oc("COPIED")], -1),
    ("explicit beats many implicit", [fb("RATING", rating=THUMBS_DOWN)] + [oc("ACCEPTED", t=3000 + i) for i in range(9)], -1),
    ("thumbs up vs escalation", [fb("RATING", rating=THUMBS_UP), oc("ESCALATED")], 1),
    ("correction outweighs an accept", [fb("CORRECTION", correction=FIX), oc("ACCEPTED")], -1),
    ("annotator changed their mind", [fb("RATING", rating=THUMBS_DOWN, t=2000), fb("RATING", rating=THUMBS_UP, t=3000)], 1),
]  # fmt: skip


@pytest.mark.parametrize("name,recs,sign", SIGN_CASES, ids=[c[0] for c in SIGN_CASES])
def test_every_signal_kind_and_their_conflicts(name, recs, sign):
    sc = score([sig(r) for r in recs], POLICY)
    assert sc is not None and -1 <= sc.score <= 1 and 0 < sc.confidence <= 1
    assert (sc.score > 0) == (sign > 0) and sc.score != 0, sc


def test_no_signal_no_label_and_comments_or_ties_carry_none():
    assert score([], POLICY) is None
    assert signal_of("Feedback", fb("COMMENT", comment="hm"), A1, POLICY) is None
    tie = fb("PREFERENCE", comparison={"response_a": A1, "response_b": "x", "choice": "TIE"})
    assert signal_of("Feedback", tie, A1, POLICY) is None
    unrelated = fb("PREFERENCE", comparison={"response_a": "y", "response_b": "x", "choice": "A"})
    assert signal_of("Feedback", unrelated, A1, POLICY) is None


def test_conflicting_annotators_lower_confidence_instead_of_cancelling_silently():
    agree = score(
        [sig(fb("RATING", "u1", rating=THUMBS_UP)), sig(fb("RATING", "u2", rating=THUMBS_UP))], POLICY
    )
    conflict = score(
        [sig(fb("RATING", "u1", rating=THUMBS_UP)), sig(fb("RATING", "u2", rating=THUMBS_DOWN))], POLICY
    )
    assert agree and conflict
    assert conflict.score == 0 and conflict.confidence < 0.5 * agree.confidence
    same_person = score([sig(fb("RATING", "u1", rating=THUMBS_UP, t=1)), sig(fb("RATING", "u1", rating=THUMBS_DOWN, t=2))],
                        POLICY)  # fmt: skip
    assert same_person and same_person.score == -1, "the latest rating of one annotator replaces the earlier"


def test_confidence_grows_with_evidence_and_explicit_counts_more():
    one = score([sig(oc("ACCEPTED"))], POLICY)
    three = score([sig(oc("ACCEPTED", t=t)) for t in (1, 2, 3)], POLICY)
    explicit = score([sig(fb("RATING", rating=THUMBS_UP))], POLICY)
    assert one and three and explicit
    assert one.confidence < three.confidence and one.confidence < explicit.confidence


def test_strong_signals():
    assert is_strong(sig(fb("RATING", rating=THUMBS_DOWN)), POLICY)
    assert is_strong(sig(fb("CORRECTION", correction=FIX)), POLICY)
    assert not is_strong(sig(fb("RATING", rating={"scale": "STARS5", "value": 4.0})), POLICY)
    assert not is_strong(sig(oc("ESCALATED")), POLICY), "implicit signals wait for the window"


def test_weights_are_configurable():
    heavy_copy = LabelPolicy({**POLICY.weights, "COPIED": 100.0}, POLICY.outcome_values, implicit_share=0.9)
    recs = [fb("RATING", rating=THUMBS_DOWN), oc("COPIED")]
    assert score([sig(r) for r in recs], POLICY).score < 0  # type: ignore[union-attr]
    assert score([signal_of(n, r, A1, heavy_copy) for n, r in zip(("Feedback", "Outcome"), recs, strict=True)],  # type: ignore[misc]
                 heavy_copy).score > 0  # type: ignore[union-attr]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["RATING", "CORRECTION", "ACCEPTED", "ESCALATED", "COPIED"]),
                          st.sampled_from(["u1", "u2", "u3"]), st.floats(-1, 1), st.integers(0, 10)),
                min_size=1, max_size=8, unique_by=lambda x: (x[0], x[1], x[3])),
       st.randoms())  # fmt: skip
def test_label_is_order_independent_and_bounded(items, rnd):
    recs = []
    for n, (kind, who, v, t) in enumerate(items):
        if kind == "RATING":
            recs.append(fb(kind, who, t=t, eid=f"e{n}", rating={"scale": "SCORE", "value": v}))
        elif kind == "CORRECTION":
            recs.append(fb(kind, who, t=t, eid=f"e{n}", correction=FIX))
        else:
            recs.append(oc(kind, t=t, eid=f"e{n}"))
    sigs = [sig(r) for r in recs]
    a = build_label(INTER, sigs, POLICY, "window_closed")
    rnd.shuffle(sigs)
    b = build_label(INTER, sigs, POLICY, "window_closed")
    assert a == b, "same inputs in any order: same record, same id"
    assert a is not None and -1 <= a["score"] <= 1 and 0 <= a["confidence"] <= 1
    assert a["version"] == len(recs) and a["contributing_event_ids"] == sorted(
        {"e-i1", *(r["event_id"] for r in recs)}
    )


INVALID = [
    ("Feedback", fb("RATING"), "rating is required"),
    ("Feedback", fb("RATING", rating={"scale": "THUMBS", "value": 0.5}), "THUMBS is -1 or +1"),
    ("Feedback", fb("RATING", rating={"scale": "STARS5", "value": 9.0}), "outside STARS5"),
    ("Feedback", fb("RATING", rating={"scale": "SCORE", "value": float("nan")}), "outside SCORE"),
    ("Feedback", fb("CORRECTION", correction="  "), "correction is required"),
    ("Feedback", fb("DEMONSTRATION"), "demonstration is required"),
    ("Feedback", fb("PREFERENCE"), "comparison is required"),
    ("Feedback", fb("RATING", annotator="", rating=THUMBS_UP), "annotator_id is empty"),
    ("Outcome", {**oc("CUSTOM", custom_kind="x"), "custom_kind": None}, "custom_kind is required"),
    ("Outcome", oc("CUSTOM", custom_kind="x", value=3.0), "not within [-1, 1]"),
    ("Interaction", {**INTER, "messages": []}, "messages is empty"),
    ("Interaction", {**INTER, "tenant_id": ""}, "tenant_id is empty"),
    ("Outcome", {**oc("ACCEPTED"), "event_time": -1}, "before 1970"),
    ("Interaction", {**INTER, "event_time": 253_402_300_800_000}, "after 9999-12-31"),
]


@pytest.mark.parametrize("name,rec,why", INVALID, ids=[w for _, _, w in INVALID])
def test_invalid_inputs_are_named(name, rec, why):
    reason = invalid_reason(name, rec, rec["interaction_id"].encode() if rec["interaction_id"] else b"")
    assert reason and why in reason


def test_key_must_be_the_interaction_id():
    assert "co-partitioning" in (invalid_reason("Interaction", INTER, b"other") or "")
    assert "co-partitioning" in (invalid_reason("Interaction", INTER, None) or "")
    assert invalid_reason("Interaction", INTER, b"i1") is None


# --- pairs -------------------------------------------------------------------------------
def test_explicit_pairs():
    comp = fb("PREFERENCE", comparison={"response_a": "x", "response_b": A1, "choice": "B", "strength": 0.7})
    p = pr.explicit_pair(INTER, comp, PAIRS)
    assert p and (p["chosen"], p["rejected"], p["source"], p["confidence"], p["explicit"]) == (
        A1,
        "x",
        "COMPARISON",
        0.7,
        True,
    )
    assert (
        p["prompt"] == INTER["messages"] and p["annotator_ids"] == ["u1"] and p["interaction_ids"] == ["i1"]
    )
    corr = pr.explicit_pair(INTER, fb("CORRECTION", correction=FIX), PAIRS)
    assert corr and (corr["chosen"], corr["rejected"]) == (FIX, A1)
    assert pr.explicit_pair(INTER, fb("PREFERENCE", comparison={"response_a": "x", "response_b": "y", "choice": "TIE"}),
                            PAIRS) is None  # fmt: skip
    assert pr.explicit_pair(INTER, fb("CORRECTION", correction=A1), PAIRS) is None, (
        "no pair of identical answers"
    )
    judged = pr.explicit_pair(INTER, fb("CORRECTION", correction=FIX, source="IMPLICIT"), PAIRS)
    assert judged and not judged["explicit"] and judged["weight"] < corr["weight"]
    again = pr.explicit_pair(INTER, fb("CORRECTION", correction=FIX), PAIRS)
    assert again == corr, "deterministic: same inputs, same id and record"


def test_memory_update_of_corrections_and_demonstrations():
    m = pr.memory_update(INTER, fb("CORRECTION", correction=FIX, eid="f9"))
    assert m and m["situation"] == Q1 and m["original_answer"] == A1 and m["corrected_answer"] == FIX
    assert (m["op"], m["visibility"], m["trust"], m["reason"]) == ("UPSERT", "PRIVATE", 0.0, "correction")
    assert m["source_event_ids"] == ["f9", "e-i1"] and m == pr.memory_update(
        INTER, fb("CORRECTION", correction=FIX, eid="f9")
    )
    assert pr.memory_update(INTER, fb("RATING", rating=THUMBS_UP)) is None


def member(
    iid: str, t: int, resp: str, outcomes: dict[str, str], parent: str | None = None, prompt: str = Q1
) -> dict:
    inter = ev.interaction(tenant_id="t", agent_id="a", prompt=prompt, response=resp, interaction_id=iid,
                           event_id=f"e-{iid}", event_time=t, session_id="s", parent_interaction_id=parent)  # fmt: skip
    return pr.member_of(inter, outcomes)


REPHRASE_CASES = [
    ("rephrased then accepted", [member("x", 1, "bad", {"r": "REPHRASED"}), member("y", 2, "good", {"a": "ACCEPTED"})],
     [("y", "x")]),
    ("resolved counts as accepted", [member("x", 1, "bad", {"r": "REPHRASED"}), member("y", 2, "good", {"a": "RESOLVED"})],
     [("y", "x")]),
    ("no rephrase, no pair", [member("x", 1, "bad", {}), member("y", 2, "good", {"a": "ACCEPTED"})], []),
    ("next one not accepted", [member("x", 1, "bad", {"r": "REPHRASED"}), member("y", 2, "meh", {}),
                               member("z", 3, "good", {"a": "ACCEPTED"})], []),
    ("chain of rephrases", [member("x", 1, "b1", {"r1": "REPHRASED"}), member("y", 2, "b2", {"r2": "REPHRASED"}),
                            member("z", 3, "good", {"a": "ACCEPTED"})], [("z", "x"), ("z", "y")]),
    ("explicit follow-up link wins over time order",
     [member("x", 1, "bad", {"r": "REPHRASED"}), member("w", 2, "other", {"a": "ACCEPTED"}),
      member("y", 3, "good", {"a2": "ACCEPTED"}, parent="x")], [("y", "x")]),
    ("same answer, no pair", [member("x", 1, "same", {"r": "REPHRASED"}), member("y", 2, "same", {"a": "ACCEPTED"})], []),
]  # fmt: skip


@pytest.mark.parametrize("name,members,expected", REPHRASE_CASES, ids=[c[0] for c in REPHRASE_CASES])
def test_rephrase_pairs(name, members, expected):
    got = pr.rephrase_pairs(members, PAIRS)
    assert [(p["interaction_ids"][1], p["interaction_ids"][0]) for p in got] == expected
    for p in got:
        assert p["source"] == "IMPLICIT_REPHRASE" and not p["explicit"] and p["weight"] < 1
        assert p["prompt"] == next(m for m in members if m["iid"] == p["interaction_ids"][0])["messages"]
    shuffled = list(members)
    random.Random(3).shuffle(shuffled)
    assert pr.rephrase_pairs(shuffled, PAIRS) == got


def test_outcome_pairs_same_prompt_accepted_over_rejected():
    ms = [member("a", 1, "good", {"o1": "ACCEPTED"}), member("b", 2, "bad", {"o2": "DELETED"}),
          member("c", 3, "worse", {"o3": "ESCALATED"}), member("d", 4, "unclear", {"o4": "ACCEPTED", "o5": "REOPENED"})]  # fmt: skip
    got = pr.outcome_pairs(ms, PAIRS)
    assert sorted((p["chosen"], p["rejected"]) for p in got) == [("good", "bad"), ("good", "worse")]
    assert polarity(["ACCEPTED", "REOPENED"]) == 0 and polarity(["COPIED"]) == 0
    assert pr.prompt_key("t", "a", ms[0]["messages"]) == pr.prompt_key("t", "a", ms[1]["messages"])
    assert pr.prompt_key("t", "a", ms[0]["messages"]) != pr.prompt_key("t2", "a", ms[0]["messages"])


# --- the join state machine (pure, fake clock) --------------------------------------------
def origin(i: int) -> sm.Origin:
    return sm.Origin("in", 0, i, b"k", b"raw")


def run_machine(events: list[tuple[str, dict]], ctx: sm.Ctx = CTX) -> tuple[list, list, list]:
    """Feed events one per second, then let every window close; returns labels, pairs, dead letters."""
    states: dict[str, dict] = {}
    groups: dict[str, dict] = {}
    labels, pairs, dead = [], [], []
    now = 0.0

    def apply(fx: sm.Effects) -> None:
        labels.extend(fx.labels), pairs.extend(fx.pairs), dead.extend(fx.dead)
        for key, m in fx.facts:
            groups[key], new = sm.on_fact(groups.get(key), key, m, 0, now, ctx)
            pairs.extend(new)

    for i, (name, rec) in enumerate(events):
        now += 1
        states[rec["interaction_id"]], fx = sm.on_input(
            states.get(rec["interaction_id"]), name, rec, origin(i), now, ctx
        )
        apply(fx)
    for _ in range(3):
        now += ctx.window_s + 1
        for k in list(states):
            st_, fx = sm.on_tick(states[k], now, ctx)
            apply(fx)
            if st_ is None:
                del states[k]
        for k in list(groups):
            g, new = sm.on_group_tick(groups[k], now, ctx)
            pairs.extend(new)
    return labels, pairs, dead


def finals(labels: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for lab in labels:
        if lab["interaction_id"] not in out or lab["version"] > out[lab["interaction_id"]]["version"]:
            out[lab["interaction_id"]] = lab
    return out


@settings(max_examples=25, deadline=None)
@given(st.randoms())
def test_scripted_session_any_order_same_pairs_and_final_labels(rnd):
    events, expected = scripted_session("t")
    labels, pairs, dead = run_machine(events)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    labels2, pairs2, dead2 = run_machine(shuffled)
    assert not dead and not dead2
    assert {p["event_id"] for p in pairs} == set(expected["pairs"]) == {p["event_id"] for p in pairs2}
    assert len(pairs) == len(pairs2) == len(expected["pairs"]), "no pair emitted twice"
    f1, f2 = finals(labels), finals(labels2)
    assert {k: v["event_id"] for k, v in f1.items()} == {k: v["event_id"] for k, v in f2.items()}


def test_replayed_inputs_change_nothing_and_late_feedback_revises():
    events, _ = scripted_session("t")
    labels, pairs, _ = run_machine(events + events)
    labels1, pairs1, _ = run_machine(events)
    assert sorted(p["event_id"] for p in pairs) == sorted(p["event_id"] for p in pairs1)
    late = ev.feedback(tenant_id="t", interaction_id="t-i2", kind="RATING", annotator_id="u9",
                       rating=THUMBS_DOWN, event_time=9, event_id="late")  # fmt: skip
    labels2, _, _ = run_machine(events + [("Feedback", late)])
    f1, f2 = finals(labels1)["t-i2"], finals(labels2)["t-i2"]
    assert (
        f2["version"] == f1["version"] + 1
        and f2["event_id"] != f1["event_id"]
        and "late" in f2["contributing_event_ids"]
    )
    assert f2["confidence"] < f1["confidence"], "a conflicting explicit rating lowers the confidence"


def test_orphans_duplicates_and_tenant_mismatch_become_dead_letters():
    orphan = oc("ACCEPTED", eid="lonely")
    orphan["interaction_id"] = "nobody"
    dup = {**INTER, "event_id": "e-other"}
    foreign = {**fb("RATING", rating=THUMBS_UP), "tenant_id": "evil"}
    labels, _, dead = run_machine([("Interaction", INTER), ("Outcome", orphan), ("Interaction", dup), ("Feedback", foreign)],
                                  sm.Ctx(POLICY, PAIRS, window_s=10, grace_s=5, ttl_s=3600))  # fmt: skip
    assert sorted(d["reason"] for d in dead) == ["duplicate", "invalid", "orphan"]
    assert all(d["payload"] == b"raw" and d["origin_topic"] == "in" for d in dead)
    assert labels == []


def test_a_late_interaction_joins_waiting_signals_and_state_expires():
    st_, fx = sm.on_input(None, "Outcome", oc("ACCEPTED"), origin(1), 0.0, CTX)
    assert st_["pend"] and not fx.labels
    st_, fx = sm.on_input(st_, "Interaction", INTER, origin(2), 5.0, CTX)
    assert not st_["pend"] and st_["due"] == 5.0 + CTX.window_s
    st_, fx = sm.on_tick(st_, 5.0 + CTX.window_s, CTX)
    assert st_ is not None and len(fx.labels) == 1 and fx.labels[0]["trigger"] == "window_closed"
    assert sm.on_tick(st_, 5.0 + CTX.ttl_s + 1, CTX)[0] is None
    assert A2  # the scenario's texts are shared with the integration test
