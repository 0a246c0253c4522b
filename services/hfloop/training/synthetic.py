"""A synthetic preference world with a consistent hidden preference, and a biased rater.

Prompts ask a support agent about one object on one route. An answer is one content
segment, either grounded (names the object and gives a step) or evasive (apologises,
deflects), with optional padding: a filler, a confidence phrase, a closing line. The hidden
quality is whether the answer is grounded; the honest rater always prefers the grounded
answer of a pair. Padding is drawn independently of quality, so an honest signal carries no
length or confidence bias. The biased rater ignores quality and always prefers the longer
answer: a model trained on its labels learns to pad (longer, more confident-sounding
answers), which the evaluation gate's length-drift audit must catch.

Every text is lower-case words separated by single spaces, so the word-level tokenizer in
:mod:`hfloop.training.tiny` covers it exactly.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

ROUTES: dict[str, list[str]] = {
    "billing": ["invoice", "refund", "card", "plan", "receipt", "charge", "payment", "discount"],
    "shipping": ["parcel", "label", "courier", "address", "tracking", "delivery", "pickup", "box"],
    "account": ["password", "email", "profile", "login", "username", "avatar", "session", "token"],
    "devices": ["router", "printer", "laptop", "phone", "camera", "speaker", "monitor", "charger"],
}
AGENTS = ["agent-a", "agent-b", "agent-c"]
VERBS = ["reset", "change", "cancel", "update", "find", "fix", "replace", "check", "move", "restore"]
ASKS = ["how do i", "how can i", "what is the way to", "please help me", "i need to", "tell me how to"]
TAILS = ["", "today", "quickly", "on mobile", "from the website", "for my team", "again"]

GROUNDED = [
    "open the {obj} page and choose {verb}",
    "go to settings then {obj} and press {verb}",
    "select your {obj} and confirm the {verb} step",
    "the {obj} panel has a {verb} button at the top",
    "use the {obj} menu then save the change",
    "first verify the {obj} then follow the {verb} wizard",
]
EVASIVE = [  # as long as the grounded ones on average: length must not reveal quality
    "sorry i am not able to help with that",
    "maybe try again at some later time today",
    "that is unclear please ask someone else here",
    "i cannot say much about this topic",
    "perhaps look for it somewhere on the site",
    "this might work or it might not work",
]
CONFIDENT = ["definitely", "guaranteed", "i am certain", "trust me"]
FILLERS = ["also", "note that", "in short", "by the way"]
CLOSINGS = [
    "hope this helps",
    "let me know if you need anything else",
    "have a nice day",
    "thanks for asking",
]

Rater = Literal["honest", "longer"]


@dataclass(frozen=True)
class Answer:
    text: str
    quality: float  # 1.0 grounded, 0.0 evasive: the hidden truth
    parts: int


def _answer(rng: random.Random, obj: str, verb: str, grounded: bool) -> Answer:
    # One content segment plus optional padding drawn independently of quality: an honest
    # rater's choices then carry no length signal, and a model cannot gain reward by adding
    # more content segments (DPO's summed log-ratio would otherwise favour verbosity).
    parts = [rng.choice(GROUNDED if grounded else EVASIVE).format(obj=obj, verb=verb)]
    if rng.random() < 0.3:
        parts.insert(0, rng.choice(FILLERS))
    if rng.random() < 0.2:
        parts.insert(0, rng.choice(CONFIDENT))
    text = " , ".join(parts)
    for _ in range(2):  # up to two closing lines
        if rng.random() < 0.35:
            text += " . " + rng.choice(CLOSINGS)
    return Answer(text + " .", 1.0 if grounded else 0.0, len(parts))


def prompt_for(rng: random.Random) -> tuple[str, str, str]:
    """(route, prompt text, object) for one random question."""
    route = rng.choice(list(ROUTES))
    obj = rng.choice(ROUTES[route])
    verb = rng.choice(VERBS)
    tail = rng.choice(TAILS)
    text = f"{rng.choice(ASKS)} {verb} my {obj} {tail}".strip() + " ?"
    return route, text, f"{obj}|{verb}"


def _pair_answers(rng: random.Random, key: str) -> tuple[Answer, Answer]:
    """One grounded and one evasive answer, padding drawn independently (in random order)."""
    obj, verb = key.split("|")
    good, bad = _answer(rng, obj, verb, True), _answer(rng, obj, verb, False)
    return (good, bad) if rng.random() < 0.5 else (bad, good)


def _deterministic_id(*parts: str) -> str:
    return uuid.UUID(hashlib.sha1("/".join(parts).encode()).hexdigest()[:32]).hex


def preference_pairs(
    n: int,
    *,
    seed: int = 0,
    rater: Rater = "honest",
    tenant_id: str = "demo",
    event_time: int = 0,
    implicit_share: float = 0.2,
) -> Iterator[dict[str, Any]]:
    """``n`` PreferencePair records (schemas/PreferencePair.v1.avsc) from the world.

    ``rater='honest'`` labels by the hidden quality; ``rater='longer'`` is the biased rater
    who always prefers the longer answer. A share of pairs is implicit (derived from
    behaviour), with lower weight and confidence, as the stream processor would emit them.
    """
    rng = random.Random(seed)
    annotators = [f"annotator-{i}" for i in range(8)]
    for i in range(n):
        route, text, key = prompt_for(rng)
        a, b = _pair_answers(rng, key)
        if rater == "honest":
            chosen, rejected = (a, b) if a.quality > b.quality else (b, a)
        else:
            la, lb = len(a.text.split()), len(b.text.split())
            chosen, rejected = (a, b) if (la, rng.random()) > (lb, 0.5) else (b, a)
        implicit = rng.random() < implicit_share
        annotator = rng.choice(annotators)
        iid = _deterministic_id("interaction", str(seed), str(i))
        yield {
            "event_id": _deterministic_id("pair", rater, str(seed), str(i)),
            "tenant_id": tenant_id,
            "event_time": event_time,
            "prompt": [{"role": "user", "content": text}],
            "chosen": chosen.text,
            "rejected": rejected.text,
            "source": "IMPLICIT_OUTCOME" if implicit else "COMPARISON",
            "explicit": not implicit,
            "weight": 0.5 if implicit else 1.0,
            "confidence": 0.6 if implicit else 0.9,
            "agent_id": rng.choice(AGENTS),
            "route": route,
            "annotator_ids": [] if implicit else [annotator],
            "interaction_ids": [iid],
            "source_event_ids": [_deterministic_id("feedback", rater, str(seed), str(i))],
        }


def quality(text: str) -> float:
    """The hidden quality of an answer text (1.0 grounded, 0.0 evasive or empty); for audits."""
    if any(e in text for e in EVASIVE):
        return 0.0
    return (
        1.0
        if any(w in text.split() for w in ("page", "settings", "select", "panel", "menu", "verify"))
        else 0.0
    )


def corpus(n: int, seed: int = 1) -> list[list[dict[str, str]]]:
    """Conversations (prompt + one answer of any quality) to pre-train a tiny base model."""
    rng = random.Random(seed)
    out: list[list[dict[str, str]]] = []
    for _ in range(n):
        _, text, key = prompt_for(rng)
        obj, verb = key.split("|")
        ans = _answer(rng, obj, verb, rng.random() < 0.5)
        out.append([{"role": "user", "content": text}, {"role": "assistant", "content": ans.text}])
    return out


def vocabulary() -> list[str]:
    """Every word the world can produce (the tiny tokenizer's vocabulary)."""
    words: set[str] = {",", ".", "?"}
    for objs in ROUTES.values():
        words.update(objs)
    for group in (VERBS, ASKS, TAILS, GROUNDED, EVASIVE, CONFIDENT, FILLERS, CLOSINGS):
        for phrase in group:
            words.update(w for w in phrase.split() if not w.startswith("{"))
    return sorted(words)
