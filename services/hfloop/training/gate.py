"""The data-quality gate: pure functions from a window's pairs to train/eval sets and a report.

Order matters and is fixed: exact duplicates, near duplicates, contradictions, weights,
balance, split, thresholds. Each step writes what it did into the report, which the
TrainingRun record carries verbatim (``gate_report``), so a refused or surprising run can
be explained from the record alone.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

Pair = dict[str, Any]  # a PreferencePair record


@dataclass
class GateConfig:
    min_pairs: int = field(
        default=500, metadata={"help": "Refuse to train below this many pairs after filtering."}
    )
    min_eval_pairs: int = field(
        default=40,
        metadata={"help": "Refuse below this many held-out pairs: the evaluation CI would be meaningless."},
    )
    min_agreement: float = field(
        default=0.7,
        metadata={
            "help": "Refuse when the weighted share of votes agreeing with the majority direction is lower."
        },
    )
    reconcile_min_share: float = field(
        default=0.75,
        metadata={
            "help": "A contradicted pair keeps its majority direction only if that share of the vote weight agrees."
        },
    )
    near_dup_jaccard: float = field(
        default=0.9,
        metadata={"help": "Word-trigram Jaccard at or above which two pairs on one prompt are duplicates."},
    )
    implicit_factor: float = field(
        default=0.5,
        metadata={"help": "Implicit pairs weigh at most this fraction of an explicit pair of equal weight."},
    )
    max_group_factor: float = field(
        default=3.0,
        metadata={
            "help": "No agent/route group keeps more than this multiple of the median group's pair count."
        },
    )
    eval_fraction: float = field(
        default=0.2, metadata={"help": "Share of prompts (by hash) held out for evaluation."}
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of the deterministic down-sampling and weighted resampling."}
    )


@dataclass
class GateResult:
    train: list[Pair]
    eval: list[Pair]
    passed: bool
    reasons: list[str]
    report: dict[str, Any]


_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalize(text: str) -> str:
    """Case, punctuation and whitespace do not make two answers different."""
    return _WS.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def prompt_text(pair: Pair) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in pair["prompt"])


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def drop_exact_duplicates(pairs: list[Pair]) -> tuple[list[Pair], int]:
    """Same event id, or same (prompt, chosen, rejected) text: keep the first."""
    seen_ids: set[str] = set()
    seen_text: set[tuple[str, str, str]] = set()
    out: list[Pair] = []
    for p in pairs:
        key = (prompt_text(p), p["chosen"], p["rejected"])
        if p["event_id"] in seen_ids or key in seen_text:
            continue
        seen_ids.add(p["event_id"])
        seen_text.add(key)
        out.append(p)
    return out, len(pairs) - len(out)


def _shingles(text: str) -> set[str]:
    words = normalize(text).split()
    return {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def drop_near_duplicates(pairs: list[Pair], threshold: float) -> tuple[list[Pair], int]:
    """Pairs on the same normalised prompt whose answers are near-identical (both sides, same direction)."""
    by_prompt: dict[str, list[tuple[set[str], set[str]]]] = defaultdict(list)
    out: list[Pair] = []
    for p in pairs:
        c, r = _shingles(p["chosen"]), _shingles(p["rejected"])
        kept = by_prompt[normalize(prompt_text(p))]
        if any(_jaccard(c, kc) >= threshold and _jaccard(r, kr) >= threshold for kc, kr in kept):
            continue
        kept.append((c, r))
        out.append(p)
    return out, len(pairs) - len(out)


def _vote_weight(p: Pair) -> float:
    # More annotators behind one pair is more evidence for its direction.
    return float(p["weight"]) * float(p["confidence"]) * max(1, len(p.get("annotator_ids") or []))


def reconcile_contradictions(pairs: list[Pair], min_share: float) -> tuple[list[Pair], dict[str, Any]]:
    """Group pairs by (prompt, {answer a, answer b}); resolve groups voting both ways.

    A group whose majority direction holds at least ``min_share`` of the vote weight keeps
    its majority pairs (weights scaled by the share); otherwise the whole group is dropped.
    ``agreement`` is the weight share that agrees with its group's majority, over all groups.
    """
    groups: dict[tuple[str, frozenset[str]], list[Pair]] = defaultdict(list)
    for p in pairs:
        key = (normalize(prompt_text(p)), frozenset((normalize(p["chosen"]), normalize(p["rejected"]))))
        groups[key].append(p)
    out: list[Pair] = []
    agree_w = total_w = 0.0
    contradicted = resolved = dropped_groups = dropped_pairs = 0
    for members in groups.values():
        votes: dict[str, float] = defaultdict(float)
        for p in members:
            votes[normalize(p["chosen"])] += _vote_weight(p)
        total = sum(votes.values())
        winner, top = max(votes.items(), key=lambda kv: (kv[1], kv[0]))
        total_w += total
        agree_w += top
        if len(votes) == 1:
            out.extend(members)
            continue
        contradicted += 1
        share = top / total if total else 0.0
        if share >= min_share:
            resolved += 1
            for p in members:
                if normalize(p["chosen"]) == winner:
                    out.append({**p, "weight": float(p["weight"]) * share})
        else:
            dropped_groups += 1
            dropped_pairs += len(members)
    report = {
        "contradicted_groups": contradicted,
        "resolved_groups": resolved,
        "dropped_groups": dropped_groups,
        "dropped_pairs": dropped_pairs,
        "agreement": round(agree_w / total_w, 4) if total_w else 1.0,
    }
    return out, report


def apply_weights(pairs: list[Pair], implicit_factor: float) -> list[Pair]:
    """Training weight = weight x confidence, and implicit pairs scaled by ``implicit_factor``."""
    out = []
    for p in pairs:
        w = float(p["weight"]) * float(p["confidence"]) * (1.0 if p["explicit"] else implicit_factor)
        out.append({**p, "train_weight": round(max(w, 1e-6), 6)})
    return out


def balance(pairs: list[Pair], max_group_factor: float, seed: int) -> tuple[list[Pair], dict[str, Any]]:
    """Cap each (agent, route) group at ``max_group_factor`` x the median group size.

    Down-sampling is deterministic (hash of seed and event id) so a rerun on the same
    offsets trains on the same pairs.
    """
    groups: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        groups[f"{p['agent_id']}/{p['route']}"].append(p)
    if not groups:
        return [], {"groups": {}, "cap": 0, "dropped": 0}
    sizes = sorted(len(v) for v in groups.values())
    median = sizes[len(sizes) // 2]
    cap = max(1, math.ceil(median * max_group_factor))
    out: list[Pair] = []
    counts: dict[str, list[int]] = {}
    for name, members in sorted(groups.items()):
        kept = sorted(members, key=lambda p: _h(f"{seed}/{p['event_id']}"))[:cap]
        counts[name] = [len(members), len(kept)]
        out.extend(kept)
    out.sort(key=lambda p: (p["event_time"], p["event_id"]))
    return out, {"groups": counts, "cap": cap, "dropped": len(pairs) - len(out)}


def is_eval_prompt(pair: Pair, eval_fraction: float) -> bool:
    """Held out by a hash of the normalised prompt: a prompt is never in both sets."""
    return _h(normalize(prompt_text(pair))) % 10_000 < eval_fraction * 10_000


def split(pairs: list[Pair], eval_fraction: float) -> tuple[list[Pair], list[Pair]]:
    train: list[Pair] = []
    held: list[Pair] = []
    for p in pairs:
        (held if is_eval_prompt(p, eval_fraction) else train).append(p)
    return train, held


def weighted_resample(pairs: list[Pair], seed: int) -> list[Pair]:
    """Draw len(pairs) pairs with replacement, proportional to ``train_weight``.

    TRL's trainers take no per-example loss weight; resampling gives each pair an expected
    share of the gradient proportional to its weight, which is the same thing in expectation.
    """
    if not pairs:
        return []
    rng = random.Random(seed)
    return rng.choices(pairs, weights=[p.get("train_weight", 1.0) for p in pairs], k=len(pairs))


def run_gate(pairs: list[Pair], config: GateConfig, extra: dict[str, Any] | None = None) -> GateResult:
    """Apply every step in order; ``passed`` is False with ``reasons`` when the data is not good enough."""
    report: dict[str, Any] = {"config": asdict(config), "input_pairs": len(pairs), **(extra or {})}
    stage, n = drop_exact_duplicates(pairs)
    report["exact_duplicates"] = n
    stage, n = drop_near_duplicates(stage, config.near_dup_jaccard)
    report["near_duplicates"] = n
    stage, rec = reconcile_contradictions(stage, config.reconcile_min_share)
    report["contradictions"] = rec
    stage = apply_weights(stage, config.implicit_factor)
    report["explicit_pairs"] = sum(1 for p in stage if p["explicit"])
    report["implicit_pairs"] = sum(1 for p in stage if not p["explicit"])
    stage, bal = balance(stage, config.max_group_factor, config.seed)
    report["balance"] = bal
    train, held = split(stage, config.eval_fraction)
    report.update({"kept_pairs": len(stage), "train_pairs": len(train), "eval_pairs": len(held)})
    train_prompts = {normalize(prompt_text(p)) for p in train}
    report["prompts_in_both"] = sum(1 for p in held if normalize(prompt_text(p)) in train_prompts)

    reasons: list[str] = []
    if len(stage) < config.min_pairs:
        reasons.append(f"too few pairs after filtering: {len(stage)} < min_pairs {config.min_pairs}")
    if len(held) < config.min_eval_pairs:
        reasons.append(f"too few held-out pairs: {len(held)} < min_eval_pairs {config.min_eval_pairs}")
    if rec["agreement"] < config.min_agreement:
        reasons.append(f"annotator agreement {rec['agreement']:.3f} < min_agreement {config.min_agreement}")
    report["passed"] = not reasons
    report["reasons"] = reasons
    return GateResult(train=train, eval=held, passed=not reasons, reasons=reasons, report=report)
