"""The simulated world without Kafka or HTTP: knowledge base, planted errors, people, agent, metrics.

Runs use a VirtualClock (hours of world in a second), a ListSink (emissions kept in memory)
and either NullLookup (the open loop: nothing is learned) or a scripted lookup that stands
in for the lookup API where a test needs particular answers from it.
"""

from __future__ import annotations

import re
from collections import Counter
from random import Random
from typing import Any

import pytest

from hfloop.config import Settings
from hfloop.events.serde import default_serde
from hfloop.gateway.ingest import prepare
from hfloop.simulate import (
    HttpLookup,
    ListSink,
    MemoryHit,
    NullLookup,
    RouteRule,
    SimAgent,
    SimulationConfig,
    VirtualClock,
    World,
    WorldConfig,
    kb,
    run_simulation,
    to_event_json,
)
from hfloop.simulate.agent import parse_hits, parse_routing
from hfloop.simulate.sinks import SdkSink


def _run(seed: int = 7, conversations: int = 400, lookup: Any = None, **world: Any) -> tuple[dict, ListSink]:
    result, sink = _result(seed, conversations, lookup, **world)
    return result.summary, sink


def _result(
    seed: int = 7, conversations: int = 400, lookup: Any = None, **world: Any
) -> tuple[Any, ListSink]:
    sink = ListSink()
    config = SimulationConfig(seed=seed, rate=5, duration_s=None, requests=conversations, progress=False,
                              run_id="test", world=WorldConfig(seed=seed, **world))  # fmt: skip
    result = run_simulation(
        Settings(), config, lookup=lookup or NullLookup(), sink=sink, clock=VirtualClock()
    )
    return result, sink


@pytest.fixture(scope="module")
def open_loop_result() -> tuple[Any, ListSink]:
    return _result(conversations=1500)


@pytest.fixture(scope="module")
def open_loop(open_loop_result) -> tuple[dict, ListSink]:
    return open_loop_result[0].summary, open_loop_result[1]


# --- knowledge base ---------------------------------------------------------------------------------
def test_knowledge_base_is_complete_and_consistent():
    world = World()
    assert 15 <= len(kb.INTENTS) <= 25
    doc_ids = [d.id for i in kb.INTENTS for d in i.docs]
    assert len(doc_ids) == len(set(doc_ids))
    assert len({i.id for i in kb.INTENTS}) == len(kb.INTENTS)
    for intent in kb.INTENTS:
        assert len(intent.questions) >= 8, intent.id
        assert intent.rewordings and intent.wrong
        slots = {**kb.COMMON_SLOTS, **intent.slots}
        for q in intent.questions:
            assert set(re.findall(r"\{(\w+)\}", q)) <= set(slots), q
        # the judge: the answer, its friendly form and the users' rewordings are right; wrong ones are not
        for text in (intent.answer, kb.friendly(intent.answer), *intent.rewordings):
            assert world.is_right(intent, text)
        for text in (*intent.wrong, kb.confident(intent.wrong[0])):
            assert not world.is_right(intent, text)
        other = next(i for i in kb.INTENTS if i.id != intent.id)
        assert not world.is_right(intent, other.answer)
    planted = world.planted()
    assert planted["stale_docs"] == {"kb-refunds-v1": "refund_policy"}
    assert planted["wrong_policy_intents"] == ["delete_account"]
    assert planted["bad_route"]["route"] == "billing" and planted["biased_pools"] == ["vendor-b"]


def test_questions_vary_and_fill_every_slot():
    world = World()
    intent = world.by_id["refund_policy"]
    rng = Random(1)
    texts = {world.question(intent, rng)[1] for _ in range(200)}
    assert len(texts) > 40
    assert not any("{" in t for t in texts)
    k, _ = world.question(intent, rng, avoid=list(range(len(intent.questions) - 1)))
    assert k == len(intent.questions) - 1


# --- reproducibility ----------------------------------------------------------------------------------
def test_same_seed_same_world_other_seed_other_world():
    _, a = _run(seed=3, conversations=120)
    _, b = _run(seed=3, conversations=120)
    _, c = _run(seed=4, conversations=120)
    assert a.emitted == b.emitted
    assert [kw.get("response") for _, kw in a.emitted] != [kw.get("response") for _, kw in c.emitted]


def test_run_ids_keep_repeated_runs_apart():
    sink1, sink2 = ListSink(), ListSink()
    for sink in (sink1, sink2):
        config = SimulationConfig(requests=20, duration_s=None, progress=False)  # random run_id
        run_simulation(Settings(), config, lookup=NullLookup(), sink=sink, clock=VirtualClock())
    ids1 = {kw["interaction_id"] for m, kw in sink1.emitted if m == "log_interaction"}
    ids2 = {kw["interaction_id"] for m, kw in sink2.emitted if m == "log_interaction"}
    assert ids1 and not ids1 & ids2
    assert [kw["response"] for m, kw in sink1.emitted if m == "log_interaction"] == [
        kw["response"] for m, kw in sink2.emitted if m == "log_interaction"
    ]


def test_a_run_is_bounded():
    with pytest.raises(ValueError):
        SimulationConfig(duration_s=None, requests=None)
    clock = VirtualClock()
    config = SimulationConfig(rate=10, duration_s=30, drain_s=5, progress=False)
    result = run_simulation(Settings(), config, lookup=NullLookup(), sink=ListSink(), clock=clock)
    assert 200 < result.summary["conversations"] < 400
    assert result.elapsed_s < 30 + 5 + 1


# --- the planted errors, seen in the open loop (nothing learned) ----------------------------------------
def test_planted_errors_show_without_the_system(open_loop_result):
    result, _ = open_loop_result
    summary = result.summary
    per: dict[str, list[bool]] = {}
    for a in result.truth.answers:
        per.setdefault(a.intent, []).append(a.right)
    rate = {k: 1 - sum(v) / len(v) for k, v in per.items()}
    assert rate["refund_policy"] > 0.8  # the stale doc outranks the current one
    assert rate["delete_account"] > 0.8  # the outdated policy
    billing = summary["routes"]["billing"]["models"]["small-model"]["rate"]
    assert 0.5 < billing < 0.7
    for route in ("security", "data"):
        assert summary["routes"][route]["rate"] < 0.1
    assert summary["docs"]["kb-refunds-v1"]["stale"] and summary["docs"]["kb-refunds-v1"]["bad_share"] > 0.8
    assert (
        "kb-refunds-v2" not in summary["docs"]
        or summary["docs"]["kb-refunds-v2"]["used"] < 0.2 * (summary["docs"]["kb-refunds-v1"]["used"])
    )
    # Nothing learned: errors after the first corrections are what the model alone makes.
    re_ = summary["repeat_error"]
    assert re_["intents_corrected"] >= 8
    assert abs(re_["reduction"]) < 0.15 and re_["counterfactual"]["reduction"] == 0


def test_every_kind_of_event_is_produced_and_some_out_of_order(open_loop):
    summary, sink = open_loop
    events = summary["events"]
    for kind in ("ACCEPTED", "COPIED", "RESOLVED", "REPHRASED", "ESCALATED", "REOPENED", "ABANDONED"):
        assert events[f"outcome.{kind}"] > 0, kind
    for kind in ("RATING", "CORRECTION", "PREFERENCE", "DEMONSTRATION"):
        assert events[f"feedback.{kind}"] > 0, kind
    assert summary["events_total"] == len(sink.emitted) == sum(events.values())
    seen: set[str] = set()
    early = 0
    for method, kw in sink.emitted:
        if method == "log_interaction":
            seen.add(kw["interaction_id"])
        elif kw["interaction_id"] not in seen:
            early += 1
    assert 0 < early < 0.05 * len(sink.emitted)
    # event_time says when it happened: a late interaction keeps its earlier time
    times = [kw["event_time"] for _, kw in sink.emitted]
    assert times != sorted(times)


def test_users_react_to_whether_the_answer_was_right():
    world = World(WorldConfig(corrector_share=1.0, user_thumbs_share=0.0))
    intent, user = world.by_id["shipping_times"], world.users[0]
    assert user.corrector
    kinds: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    for right in (True, False):
        for n in range(2000):
            r = world.react(
                user=user, intent=intent, iid=f"i{n}", session_id="s", turn=0, right=right, rng=Random(n)
            )
            for p in r.planned:
                kinds[right][p.kwargs.get("kind", p.method)] += 1
                if p.method == "correct":
                    assert world.is_right(intent, p.kwargs["corrected"])
            assert (r.follow_up_s is not None) == any(p.kwargs.get("kind") == "REPHRASED" for p in r.planned)
    good, bad = kinds[True], kinds[False]
    assert good["ACCEPTED"] > 5 * bad["ACCEPTED"] / 2 and good["RESOLVED"] > bad["RESOLVED"]
    for k in ("REPHRASED", "ESCALATED", "ABANDONED"):
        assert bad[k] > 4 * good[k], k
    assert bad["REOPENED"] > 0 and good["REOPENED"] == 0
    assert bad["correct"] > 1000 and good["correct"] == 0


def test_malicious_correctors_write_wrong_corrections():
    world = World(WorldConfig(corrector_share=1.0, malicious_share=1.0))
    intent = world.by_id["shipping_times"]
    texts = [
        p.kwargs["corrected"]
        for n in range(200)
        for p in world.react(
            user=world.users[0], intent=intent, iid="i", session_id="s", turn=0, right=False, rng=Random(n)
        ).planned  # fmt: skip
        if p.method == "correct"
    ]
    assert texts and not any(world.is_right(intent, t) for t in texts)


def test_rephrases_stay_in_the_session_and_point_back(open_loop):
    _, sink = open_loop
    by_session: dict[str, list[dict]] = {}
    for method, kw in sink.emitted:
        if method == "log_interaction":
            by_session.setdefault(kw["session_id"], []).append(kw)
    multi = [turns for turns in by_session.values() if len(turns) > 1]
    assert multi
    for turns in multi:
        turns.sort(key=lambda kw: len(kw["prompt"]))
        assert len({t["user_id"] for t in turns}) == 1
        for prev, nxt in zip(turns, turns[1:], strict=False):
            assert nxt["parent_interaction_id"] == prev["interaction_id"]
            assert nxt["prompt"][-1]["content"] != prev["prompt"][-1]["content"]
            assert nxt["prompt"][-3:-1] == [{"role": "user", "content": prev["prompt"][-1]["content"]},
                                            {"role": "assistant", "content": prev["response"]}]  # fmt: skip
        assert len(turns) <= WorldConfig().max_rephrases + 1


def test_the_biased_pool_rates_worse_than_the_others(open_loop):
    pools = open_loop[0]["pools"]
    assert pools["vendor-b"]["biased"] and not pools["experts"]["biased"]
    assert pools["experts"]["rating_accuracy"] > 0.9 and pools["vendor-a"]["rating_accuracy"] > 0.78
    assert pools["vendor-b"]["rating_accuracy"] < pools["vendor-a"]["rating_accuracy"] - 0.08
    assert pools["vendor-b"]["preference_accuracy"] < 0.6 < pools["vendor-a"]["preference_accuracy"]


def test_biased_raters_prefer_the_long_confident_answer():
    world = World()
    intent = world.by_id["shipping_times"]
    chose_long = total = 0
    for n in range(3000):
        for p in world.annotate(intent=intent, iid="i", response=intent.answer, right=True, rng=Random(n)):
            if (
                p.method == "prefer"
                and p.kwargs["annotator_pool"] == "vendor-b"
                and p.kwargs["choice"] != "TIE"
            ):
                a, b = p.kwargs["response_a"], p.kwargs["response_b"]
                if world.is_confident(a) != world.is_confident(b):
                    total += 1
                    chose_long += world.is_confident(a if p.kwargs["choice"] == "A" else b)
    assert total > 50 and chose_long / total > 0.75


# --- the agent applies what the lookup API says --------------------------------------------------------
class ScriptedLookup:
    """In-memory stand-in for the lookup API (fixed answers), to check the agent obeys it."""

    def __init__(self, hits=(), routes=None, weights=None):
        self.hits, self.routes, self.weights = list(hits), routes or {}, weights or {}
        self.calls: list[tuple] = []

    def memory_search(self, text, *, agent_id, user_id, k, threshold):
        self.calls.append(("memory", text, agent_id, user_id, k, threshold))
        return self.hits

    def routing(self, agent_id):
        self.calls.append(("routing", agent_id))
        return self.routes

    def doc_weights(self, doc_ids):
        self.calls.append(("weights", tuple(doc_ids)))
        return self.weights


def _respond(lookup, intent_id="refund_policy", seed=0):
    world = World()
    agent = SimAgent(world, lookup)
    intent = world.by_id[intent_id]
    turn = agent.respond(
        intent, "Can I get a refund?", interaction_id="i1", user_id="u1", history=[], rng=Random(seed)
    )
    return world, intent, turn


def test_agent_answers_from_a_memory_hit_above_the_threshold():
    world = World()
    right = world.by_id["refund_policy"].rewordings[0]
    lookup = ScriptedLookup(hits=[MemoryHit("m-1", 0.81, right)])
    _, intent, turn = _respond(lookup)
    assert turn.response == right and turn.memory_ids == ["m-1"] and world.is_right(intent, turn.response)
    assert ("memory", "Can I get a refund?", "commerce", "u1", 3, 0.55) in lookup.calls
    _, _, weak = _respond(ScriptedLookup(hits=[MemoryHit("m-2", 0.3, right)]))
    assert weak.memory_ids == [] and weak.response != right


def test_agent_follows_routing_and_document_weights():
    for seed in range(20):
        _, _, turn = _respond(ScriptedLookup(), seed=seed)
        assert turn.doc_ids == ["kb-refunds-v1"] or turn.doc_ids == ["kb-refunds-v2"]
    stale_top = sum(_respond(ScriptedLookup(), seed=s)[2].doc_ids == ["kb-refunds-v1"] for s in range(200))
    assert stale_top > 180  # the stale doc outranks the current one
    fixed = [_respond(ScriptedLookup(weights={"kb-refunds-v1": 0.4}), seed=s) for s in range(200)]
    assert all(t.doc_ids == ["kb-refunds-v2"] for _, _, t in fixed)
    assert sum(w.is_right(i, t.response) for w, i, t in fixed) > 180
    routed = [_respond(ScriptedLookup(routes={"billing": RouteRule("FALLBACK_MODEL", "large-model")}),
                       intent_id="cancel_subscription", seed=s)[2] for s in range(100)]  # fmt: skip
    assert all(t.model_id == "large-model" and t.routing_action == "FALLBACK_MODEL" for t in routed)
    default = [_respond(ScriptedLookup(), intent_id="cancel_subscription", seed=s)[2] for s in range(100)]
    assert all(t.model_id == "small-model" for t in default)
    world = World()
    intent = world.by_id["cancel_subscription"]
    assert sum(not world.is_right(intent, t.response) for t in default) > 45
    assert sum(not world.is_right(intent, t.response) for t in routed) < 15
    human = _respond(ScriptedLookup(routes={"billing": RouteRule("HUMAN")}), intent_id="cancel_subscription")[
        2
    ]
    assert human.model_id == "human-agent"


def test_http_lookup_reads_the_api_shapes_caches_and_counts_failures():
    class Client:
        def __init__(self):
            self.calls = Counter()
            self.memory = self
            self.fail = False

        def search(self, text, **kw):
            self.calls["search"] += 1
            if self.fail:
                raise RuntimeError("down")
            return [{"memory_id": "m1", "situation": "q", "corrected_answer": "a", "score": 0.7, "trust": 0.5},
                    {"memory_id": "m2", "corrected_answer": "b", "score": 0.9}]  # fmt: skip

        def routing(self, agent_id):
            self.calls["routing"] += 1
            return {"agent_id": agent_id, "routes": {"billing": {"action": "FALLBACK_MODEL", "target": "big",
                                                                  "bad_rate": 0.6, "evidence": 30.0}}}  # fmt: skip

        def retrieval_weights(self, doc_ids):
            self.calls["weights"] += 1
            return {d: 0.5 for d in doc_ids}

    now = [0.0]
    client = Client()
    lookup = HttpLookup(client, ttl_s=1.0, clock=lambda: now[0])
    hits = lookup.memory_search("q", agent_id="a", user_id="u", k=3, threshold=0.5)
    assert [h.memory_id for h in hits] == ["m2", "m1"] and hits[0].answer == "b"
    assert lookup.routing("a")["billing"] == RouteRule("FALLBACK_MODEL", "big")
    assert lookup.doc_weights(["d1", "d2"]) == {"d1": 0.5, "d2": 0.5}
    lookup.routing("a"), lookup.doc_weights(["d2", "d1"])
    assert client.calls["routing"] == 1 and client.calls["weights"] == 1  # cached
    now[0] = 2.0
    lookup.routing("a")
    assert client.calls["routing"] == 2
    client.fail = True
    assert lookup.memory_search("q", agent_id="a", user_id="u", k=3, threshold=0.5) == []
    assert lookup.errors == 1 and "down" in (lookup.last_error or "")
    with pytest.raises(RuntimeError):
        HttpLookup(client, strict=True).memory_search("q", agent_id="a", user_id="u", k=3, threshold=0.5)
    assert parse_routing({"rules": [{"route": "x", "action": "human"}]}) == {"x": RouteRule("HUMAN")}
    assert parse_hits([{"id": "m", "payload": {"corrected_answer": "c"}, "score": 0.6}])[0].answer == "c"


# --- publishing --------------------------------------------------------------------------------------
def test_every_emission_is_a_valid_gateway_event_and_sdk_record():
    _, sink = _run(conversations=150)
    serde = default_serde()
    names = {"interaction": "Interaction", "feedback": "Feedback", "outcome": "Outcome"}
    methods = Counter()
    for method, kw in sink.emitted:
        body = to_event_json(method, kw)
        assert "tenant_id" not in body
        encoded = prepare(serde, body, "acme")  # the gateway's own validation
        name, rec = serde.decode(encoded.value)
        assert name == names[body["type"]] and rec["tenant_id"] == "acme"
        assert rec["interaction_id"] == kw["interaction_id"] and rec["event_time"] == kw["event_time"]
        methods[method] += 1
    assert set(methods) == {"log_interaction", "signal", "rate", "correct", "prefer", "demonstrate"}


def test_sdk_sink_calls_the_feedback_client_methods():
    class Recorder:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            return lambda *a, **kw: self.calls.append((name, kw))

    rec = Recorder()
    sink = SdkSink(rec)
    sink.emit("correct", {"interaction_id": "i", "corrected": "x", "annotator_id": "u"})
    sink.close()
    assert rec.calls == [
        ("correct", {"interaction_id": "i", "corrected": "x", "annotator_id": "u"}),
        ("flush", {}),
    ]
