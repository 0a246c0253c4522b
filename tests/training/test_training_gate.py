"""The data-quality gate, as pure functions (no Kafka, no Ray)."""

from __future__ import annotations

from typing import Any

from hfloop.training import synthetic
from hfloop.training.gate import (
    GateConfig,
    apply_weights,
    balance,
    drop_exact_duplicates,
    drop_near_duplicates,
    is_eval_prompt,
    normalize,
    prompt_text,
    reconcile_contradictions,
    run_gate,
    weighted_resample,
)


def pair(i: int, prompt: str = "how do i reset my password ?", chosen: str = "open settings", rejected: str = "sorry no",
         **kw: Any) -> dict[str, Any]:  # fmt: skip
    base = {
        "event_id": f"e{i}", "tenant_id": "t", "event_time": i, "prompt": [{"role": "user", "content": prompt}],
        "chosen": chosen, "rejected": rejected, "source": "COMPARISON", "explicit": True, "weight": 1.0,
        "confidence": 1.0, "agent_id": "a", "route": "r", "annotator_ids": [f"ann{i}"], "interaction_ids": [],
        "source_event_ids": [],
    }  # fmt: skip
    base.update(kw)
    return base


def test_exact_duplicates_by_id_and_by_text():
    pairs = [pair(1), pair(1), pair(2), pair(3, chosen="other answer")]
    kept, dropped = drop_exact_duplicates(pairs)
    assert [p["event_id"] for p in kept] == ["e1", "e3"] and dropped == 2


def test_near_duplicates_only_on_the_same_prompt():
    long_c = "go to settings then password and press reset to finish"
    pairs = [
        pair(1, chosen=long_c, rejected="sorry i am not able to help with that"),
        pair(
            2, chosen=long_c.upper() + " !", rejected="sorry, i am not able to help with that."
        ),  # same up to case/punct
        pair(
            3,
            prompt="something else entirely ?",
            chosen=long_c,
            rejected="sorry i am not able to help with that",
        ),
    ]
    kept, dropped = drop_near_duplicates(pairs, 0.9)
    assert [p["event_id"] for p in kept] == ["e1", "e3"] and dropped == 1


def test_contradiction_resolved_by_weighted_majority_or_dropped():
    a, b = "open settings and press reset", "sorry i cannot help"
    majority = [pair(i, chosen=a, rejected=b) for i in range(4)] + [pair(9, chosen=b, rejected=a, weight=0.5)]
    kept, rep = reconcile_contradictions(majority, 0.75)
    assert rep["resolved_groups"] == 1 and {p["chosen"] for p in kept} == {a} and len(kept) == 4
    assert all(p["weight"] < 1.0 for p in kept)  # scaled by the vote share: less certain than unanimous
    split = [pair(1, chosen=a, rejected=b), pair(2, chosen=b, rejected=a)]
    kept, rep = reconcile_contradictions(split, 0.75)
    assert kept == [] and rep["dropped_groups"] == 1 and rep["agreement"] == 0.5


def test_implicit_pairs_weigh_less_than_explicit():
    ex, im = apply_weights([pair(1), pair(2, explicit=False, source="IMPLICIT_OUTCOME")], 0.5)
    assert im["train_weight"] < ex["train_weight"]
    draws = weighted_resample([ex, im] * 500, seed=0)
    assert sum(1 for p in draws if p["explicit"]) > 1.5 * sum(1 for p in draws if not p["explicit"])


def test_balance_caps_a_busy_route():
    busy = [pair(i, prompt=f"q{i}", agent_id="a", route="busy") for i in range(100)]
    quiet = [pair(1000 + i, prompt=f"p{i}", agent_id="b", route=f"r{i % 3}") for i in range(30)]
    kept, rep = balance(busy + quiet, 2.0, seed=0)
    assert rep["groups"]["a/busy"] == [100, 20] and len(kept) == 50
    assert kept == balance(busy + quiet, 2.0, seed=0)[0]  # deterministic


def test_split_never_puts_a_prompt_in_both_sets():
    pairs = list(synthetic.preference_pairs(600, seed=5))
    res = run_gate(pairs, GateConfig(min_pairs=100))
    train = {normalize(prompt_text(p)) for p in res.train}
    assert res.eval and not any(normalize(prompt_text(p)) in train for p in res.eval)
    assert all(is_eval_prompt(p, 0.2) for p in res.eval)
    assert 0.1 < len(res.eval) / (len(res.eval) + len(res.train)) < 0.3


def test_gate_refuses_a_small_window_and_says_why():
    res = run_gate(list(synthetic.preference_pairs(120, seed=1)), GateConfig())
    assert not res.passed
    assert any("min_pairs 500" in r for r in res.reasons) and res.report["reasons"] == res.reasons
    assert res.report["input_pairs"] == 120


def test_gate_refuses_low_agreement():
    pairs = list(synthetic.preference_pairs(700, seed=2))
    flipped = [
        {**p, "event_id": p["event_id"] + "-flip", "chosen": p["rejected"], "rejected": p["chosen"]}
        for p in pairs
    ]
    res = run_gate(pairs + flipped, GateConfig())
    assert not res.passed and any("agreement" in r for r in res.reasons)


def test_gate_passes_a_clean_window_and_reports_every_step():
    res = run_gate(list(synthetic.preference_pairs(800, seed=3)), GateConfig())
    assert res.passed, res.reasons
    for key in (
        "exact_duplicates",
        "near_duplicates",
        "contradictions",
        "balance",
        "implicit_pairs",
        "prompts_in_both",
    ):
        assert key in res.report
    assert res.report["implicit_pairs"] > 0 and res.report["prompts_in_both"] == 0
