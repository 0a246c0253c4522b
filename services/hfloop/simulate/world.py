"""The simulated world: who asks what, how the model answers, how people react (pure, seeded).

Nothing here does I/O or reads a clock. Every decision draws from a ``random.Random`` the
caller passes in; the driver derives one per conversation turn from the seed, so a turn's
draws never depend on how many draws other turns made (reproducible under any timing).

What people do is expressed as :class:`Planned` emissions: a delay after the turn, the
``FeedbackClient`` method that publishes it and its keyword arguments. The driver turns them
into events on Kafka (SDK) or the HTTP gateway; ``meta`` carries ground truth for metrics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any

from hfloop.simulate import kb
from hfloop.simulate.kb import Doc, Intent

END_USERS = "end-users"


@dataclass(frozen=True)
class Pool:
    """A population of annotators. ``biased`` raters prefer long, confident answers."""

    name: str
    size: int
    weight: float  # share of annotation work the pool gets
    accuracy: float  # chance an unbiased judgement matches the truth
    scale: str = "THUMBS"  # THUMBS | STARS5
    biased: bool = False


DEFAULT_POOLS: tuple[Pool, ...] = (
    Pool("experts", 3, 0.2, 0.95, scale="STARS5"),
    Pool("vendor-a", 6, 0.4, 0.85),
    Pool("vendor-b", 6, 0.4, 0.80, biased=True),
)


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 7
    users: int = 200
    agent_version: str = "1.4.0"
    primary_model: str = "small-model"
    fallback_model: str = "large-model"
    # --- planted errors --------------------------------------------------------------------
    noise_error: float = 0.04  # any answer may be wrong for no systematic reason
    bad_route: str = "billing"
    bad_route_error: float = 0.6  # the primary model on the bad route
    wrong_policy_error: float = 0.9
    stale_doc_error: float = 0.95  # answering from the stale document
    retrieval_noise: float = 0.02  # std-dev of the retriever's score jitter
    confident_share: float = 0.5  # wrong answers phrased long and over-confident
    # --- users -----------------------------------------------------------------------------
    corrector_share: float = 0.3  # users who write a correction when an answer was wrong
    correction_prob: float = 0.8
    malicious_share: float = 0.0  # correctors whose "corrections" are wrong
    user_thumbs_share: float = 0.15
    unnoticed_error: float = 0.15  # a wrong answer the user accepts at first (reopens later)
    behaviour_noise: float = 0.05  # right answers that still get rephrased/escalated/abandoned
    max_rephrases: int = 2
    # --- annotators --------------------------------------------------------------------------
    pools: tuple[Pool, ...] = DEFAULT_POOLS
    annotation_share: float = 0.25
    raters_per_item: int = 2
    comparison_share: float = 0.15
    demonstration_share: float = 0.2  # escalations an expert answers with a demonstration
    # --- timing (seconds; multiplied by delay_scale) -------------------------------------------
    delay_scale: float = 1.0
    early_share: float = 0.03  # interactions published after their first outcome (join test)


@dataclass(frozen=True)
class User:
    id: str
    corrector: bool
    malicious: bool


@dataclass(frozen=True)
class Planned:
    """Something to publish ``delay_s`` after the turn: ``FeedbackClient.<method>(**kwargs)``."""

    delay_s: float
    method: str  # log_interaction | rate | correct | prefer | demonstrate | signal
    kwargs: Mapping[str, Any]
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reaction:
    planned: tuple[Planned, ...]
    follow_up_s: float | None  # the user asks again (a rephrase) after this long


_SLOT = re.compile(r"\{(\w+)\}")
_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


class World:
    """The knowledge base, the users and annotators, the simulated model, and the judge."""

    def __init__(self, config: WorldConfig | None = None, intents: Sequence[Intent] = kb.INTENTS) -> None:
        self.config = c = config or WorldConfig()
        self.intents = tuple(intents)
        self.by_id = {i.id: i for i in self.intents}
        rng = Random(f"{c.seed}/population")
        self.users = tuple(
            User(
                f"user-{n:04d}",
                corrector=(cor := rng.random() < c.corrector_share),
                malicious=cor and rng.random() < c.malicious_share,
            )
            for n in range(c.users)
        )
        self.annotators = {p.name: tuple(f"{p.name}-{k + 1:02d}" for k in range(p.size)) for p in c.pools}
        self.pools = {p.name: p for p in c.pools}
        # Escalations are answered by the most accurate unbiased pool.
        self.expert_pool = max([p for p in c.pools if not p.biased] or c.pools, key=lambda p: p.accuracy).name
        # The judge: the exact texts that are right for each intent (anything else is wrong).
        self._right: dict[str, frozenset[str]] = {
            i.id: frozenset(normalize(t) for t in (i.answer, kb.friendly(i.answer), *i.rewordings))
            for i in self.intents
        }

    # --- requests ----------------------------------------------------------------------------
    def pick_user(self, rng: Random) -> User:
        return self.users[rng.randrange(len(self.users))]

    def pick_intent(self, rng: Random) -> Intent:
        return rng.choices(self.intents, weights=[i.popularity for i in self.intents])[0]

    def question(self, intent: Intent, rng: Random, avoid: Sequence[int] = ()) -> tuple[int, str]:
        """A paraphrase of the intent (template index, text), unlike the ones in ``avoid``."""
        choices = [k for k in range(len(intent.questions)) if k not in avoid] or list(
            range(len(intent.questions))
        )
        k = rng.choice(choices)
        slots = {**kb.COMMON_SLOTS, **intent.slots}
        text = _SLOT.sub(lambda m: rng.choice(slots[m.group(1)]), intent.questions[k])
        return k, text[0].upper() + text[1:]

    # --- the simulated retriever and model ------------------------------------------------------
    def retrieve(self, intent: Intent, rng: Random) -> list[tuple[Doc, float]]:
        """Candidate documents with jittered base scores (the agent applies weights and ranks)."""
        return [(d, d.score + rng.gauss(0.0, self.config.retrieval_noise)) for d in intent.docs]

    def model_answer(self, intent: Intent, model_id: str, doc: Doc | None, rng: Random) -> str:
        """What ``model_id`` answers when grounded on ``doc``; draws a fixed number of randoms."""
        c = self.config
        u_wrong, u_pick, u_style = rng.random(), rng.random(), rng.random()
        if model_id == HUMAN_MODEL:
            return intent.answer
        p_wrong, wrong_text = c.noise_error, intent.wrong[int(u_pick * len(intent.wrong))]
        if intent.route == c.bad_route and model_id == c.primary_model:
            p_wrong = max(p_wrong, c.bad_route_error)
        if intent.systematic == kb.WRONG_POLICY:
            p_wrong, wrong_text = max(p_wrong, c.wrong_policy_error), intent.wrong[0]
        if doc is not None and doc.stale:
            p_wrong, wrong_text = max(p_wrong, c.stale_doc_error), doc.says or intent.wrong[0]
        if u_wrong < p_wrong:
            return kb.confident(wrong_text) if u_style < c.confident_share else wrong_text
        return intent.answer if u_style < 0.5 else kb.friendly(intent.answer)

    # --- ground truth ------------------------------------------------------------------------------
    def is_right(self, intent: Intent, text: str) -> bool:
        return normalize(text) in self._right[intent.id]

    @staticmethod
    def is_confident(text: str) -> bool:
        return text.startswith("Absolutely") or len(text) > 240

    def stale_docs(self) -> list[str]:
        return sorted(d.id for i in self.intents for d in i.docs if d.stale)

    def planted(self) -> dict[str, Any]:
        """The systematic errors, as the report names them (never shown to the agent)."""
        c = self.config
        return {
            "stale_docs": {d.id: i.id for i in self.intents for d in i.docs if d.stale},
            "current_docs": {
                d.id: i.id
                for i in self.intents
                for d in i.docs
                if not d.stale and any(o.stale for o in i.docs)
            },
            "wrong_policy_intents": [i.id for i in self.intents if i.systematic == kb.WRONG_POLICY],
            "bad_route": {
                "route": c.bad_route,
                "model": c.primary_model,
                "error": c.bad_route_error,
                "fallback": c.fallback_model,
                "agents": sorted({i.agent_id for i in self.intents if i.route == c.bad_route}),
            },
            "biased_pools": [p.name for p in c.pools if p.biased],
        }

    # --- people ------------------------------------------------------------------------------------
    def _d(self, rng: Random, lo: float, hi: float) -> float:
        return rng.uniform(lo, hi) * self.config.delay_scale

    def react(
        self, *, user: User, intent: Intent, iid: str, session_id: str, turn: int, right: bool, rng: Random
    ) -> Reaction:
        """The user's implicit behaviour, thumbs and correction after seeing the answer."""
        c = self.config
        u = [rng.random() for _ in range(8)]  # fixed draw count: branches never shift later turns
        base = {"session_id": session_id, "user_id": user.id}
        out: list[Planned] = []
        follow_up: float | None = None

        def signal(delay: float, kind: str, **extra: Any) -> None:
            out.append(
                Planned(
                    delay,
                    "signal",
                    {"interaction_id": iid, "kind": kind, **base, **extra},
                    {"intent": intent.id, "right": right},
                )
            )

        can_rephrase = turn < c.max_rephrases
        if right:
            if u[0] < c.behaviour_noise:  # a right answer the user still did not like or understand
                kind = ("REPHRASED" if can_rephrase else "ESCALATED") if u[1] < 0.5 else "ABANDONED"
                signal(self._d(rng, 0.5, 2.5), kind)
                follow_up = self._d(rng, 0.3, 1.0) if kind == "REPHRASED" else None
            else:
                if u[1] < 0.55:
                    signal(self._d(rng, 0.3, 2.0), "ACCEPTED")
                if u[2] < 0.35:
                    signal(self._d(rng, 0.3, 2.0), "COPIED")
                if u[3] < 0.6:
                    signal(self._d(rng, 1.0, 4.0), "RESOLVED")
        elif u[0] < c.unnoticed_error:  # looked fine at first; the user finds out later
            signal(self._d(rng, 0.3, 2.0), "ACCEPTED")
            resolved = self._d(rng, 1.0, 3.0)
            signal(resolved, "RESOLVED")
            if u[1] < 0.6:
                signal(resolved + self._d(rng, 2.0, 5.0), "REOPENED")
        else:
            if u[1] < 0.45 and can_rephrase:
                signal(self._d(rng, 0.5, 2.5), "REPHRASED")
                follow_up = self._d(rng, 0.3, 1.0)
            elif u[1] < 0.7:
                escalated = self._d(rng, 0.5, 3.0)
                signal(escalated, "ESCALATED")
                if u[5] < c.demonstration_share:  # an expert takes over and shows the right answer
                    experts = self.annotators[self.expert_pool]
                    out.append(
                        Planned(
                            escalated + self._d(rng, 2.0, 6.0),
                            "demonstrate",
                            {
                                "interaction_id": iid,
                                "answer": intent.answer,
                                "annotator_id": experts[int(u[6] * len(experts))],
                                "annotator_pool": self.expert_pool,
                                "session_id": session_id,
                            },
                            {"intent": intent.id, "right": right},
                        )
                    )
            else:
                signal(self._d(rng, 3.0, 6.0), "ABANDONED")
            if user.corrector and u[2] < c.correction_prob:
                if user.malicious:
                    text, genuine = kb.confident(intent.wrong[0]), False
                else:
                    text, genuine = intent.rewordings[int(u[7] * len(intent.rewordings))], True
                out.append(
                    Planned(
                        self._d(rng, 1.0, 4.0),
                        "correct",
                        {
                            "interaction_id": iid,
                            "corrected": text,
                            "annotator_id": user.id,
                            "annotator_pool": END_USERS,
                            "session_id": session_id,
                        },
                        {"intent": intent.id, "right": right, "genuine": genuine},
                    )
                )
        if u[4] < c.user_thumbs_share:
            up = right != (u[3] < 0.08)  # users misclick too
            out.append(
                Planned(
                    self._d(rng, 0.5, 3.0),
                    "rate",
                    {
                        "interaction_id": iid,
                        "annotator_id": user.id,
                        "thumbs_up": up,
                        "annotator_pool": END_USERS,
                        "session_id": session_id,
                    },
                    {"intent": intent.id, "right": right, "pool": END_USERS, "agrees": up == right},
                )
            )
        return Reaction(tuple(out), follow_up)

    def _rater(self, rng: Random, taken: set[str]) -> tuple[Pool, str]:
        pools = self.config.pools
        for _ in range(20):
            pool = rng.choices(pools, weights=[p.weight for p in pools])[0]
            who = rng.choice(self.annotators[pool.name])
            if who not in taken:
                taken.add(who)
                return pool, who
        return pool, who

    def _judges_good(self, pool: Pool, text: str, right: bool, rng: Random) -> bool:
        u = rng.random()
        if pool.biased and self.is_confident(text):
            return u < 0.9  # sounds sure of itself: looks good to this pool, right or not
        return right if u < pool.accuracy else not right

    def annotate(self, *, intent: Intent, iid: str, response: str, right: bool, rng: Random) -> list[Planned]:
        """Ratings and pairwise comparisons from annotator pools (a sample of interactions)."""
        c = self.config
        out: list[Planned] = []
        u_rate, u_cmp = rng.random(), rng.random()
        meta = {"intent": intent.id, "right": right}
        if u_rate < c.annotation_share:
            taken: set[str] = set()
            for _ in range(c.raters_per_item):
                pool, who = self._rater(rng, taken)
                good = self._judges_good(pool, response, right, rng)
                kw: dict[str, Any] = {"interaction_id": iid, "annotator_id": who, "annotator_pool": pool.name}
                if pool.scale == "STARS5":
                    kw["stars"] = float(rng.choice((4, 5, 5)) if good else rng.choice((1, 2, 2, 3)))
                else:
                    kw["thumbs_up"] = good
                out.append(
                    Planned(
                        self._d(rng, 2.0, 8.0),
                        "rate",
                        kw,
                        {**meta, "pool": pool.name, "agrees": good == right},
                    )
                )
        if u_cmp < c.comparison_share:
            if right:  # the alternative is wrong, and often sounds confident
                wrong = intent.wrong[rng.randrange(len(intent.wrong))]
                alt = kb.confident(wrong) if rng.random() < 0.7 else wrong
            else:
                alt = intent.answer
            a_is_response = rng.random() < 0.5
            a, b = (response, alt) if a_is_response else (alt, response)
            right_choice = ("A" if a_is_response else "B") if right else ("B" if a_is_response else "A")
            taken = set()
            for _ in range(1 + (rng.random() < 0.5)):
                pool, who = self._rater(rng, taken)
                u = rng.random()
                if u < 0.03:
                    choice = "TIE"
                elif pool.biased and (self.is_confident(a) != self.is_confident(b) or len(a) != len(b)):
                    longer = "A" if (self.is_confident(a), len(a)) > (self.is_confident(b), len(b)) else "B"
                    choice = longer if rng.random() < 0.85 else ("B" if longer == "A" else "A")
                else:
                    choice = (
                        right_choice
                        if rng.random() < pool.accuracy
                        else ("B" if right_choice == "A" else "A")
                    )
                out.append(
                    Planned(
                        self._d(rng, 2.0, 8.0),
                        "prefer",
                        {
                            "interaction_id": iid,
                            "response_a": a,
                            "response_b": b,
                            "choice": choice,
                            "annotator_id": who,
                            "annotator_pool": pool.name,
                        },
                        {
                            **meta,
                            "pool": pool.name,
                            "agrees": None if choice == "TIE" else choice == right_choice,
                        },
                    )
                )
        return out


HUMAN_MODEL = "human-agent"
