"""On the real broker: a scripted session yields exactly the expected labels, pairs and memory
updates; shuffled input yields the same; replaying the inputs from offset 0 adds no pair id."""

from __future__ import annotations

import random
import time
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from stream_helpers import produce, read_outputs, wait_until
from stream_scenario import scripted_session

from hfloop.stream.app import TopicNames
from hfloop.stream.service import StreamService


def _final_labels(labels: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for lab in labels:
        cur = out.get(lab["interaction_id"])
        if cur is None or lab["version"] > cur["version"]:
            out[lab["interaction_id"]] = lab
    return out


def _check(out: dict[str, list[dict[str, Any]]], expected: dict[str, Any]) -> None:
    assert out["dlq"] == []
    pairs = {p["event_id"]: p for p in out["preferences"]}
    assert set(pairs) == set(expected["pairs"]), "exactly the expected pair ids"
    for pid, (source, chosen, rejected, question) in expected["pairs"].items():
        p = pairs[pid]
        assert (p["source"], p["chosen"], p["rejected"], p["prompt"][-1]["content"]) == (
            source,
            chosen,
            rejected,
            question,
        )
        assert 0 < p["weight"] <= 1 and 0 <= p["confidence"] <= 1 and p["source_event_ids"]
    final = _final_labels(out["labels"])
    assert set(final) == set(expected["labels"])
    for iid, (sign, contributing, annotators, version) in expected["labels"].items():
        lab = final[iid]
        assert (lab["score"] > 0) == (sign > 0) and lab["score"] != 0, lab
        assert lab["contributing_event_ids"] == contributing
        assert lab["annotator_ids"] == annotators
        assert lab["version"] == version
        assert 0 < lab["confidence"] <= 1
    assert final[f"{iid.rsplit('-', 1)[0]}-i1"]["retrieved_doc_ids"] == ["kb-12"]
    assert {ids for lab in out["labels"] for ids in [lab["event_id"]]} == {
        lab["event_id"] for lab in out["labels"]
    }
    mem = {m["memory_id"]: m for m in out["memory"]}
    assert {k: m["corrected_answer"] for k, m in mem.items()} == expected["memory"]
    assert all(
        m["op"] == "UPSERT" and m["visibility"] == "PRIVATE" and m["trust"] == 0.0 for m in mem.values()
    )


def _run(settings, names: TopicNames, events, expected) -> dict[str, list[dict[str, Any]]]:
    with StreamService(settings, names) as svc:
        svc.wait_ready(60)
        produce(settings, names, events)

        def done() -> bool:
            out = read_outputs(settings, names)
            return {p["event_id"] for p in out["preferences"]} >= set(expected["pairs"]) and set(
                _final_labels(out["labels"])
            ) >= set(expected["labels"])

        assert wait_until(done, 60), read_outputs(settings, names)
        time.sleep(3 * settings.label_window_s)  # nothing else may arrive afterwards
        assert svc.error is None
    return read_outputs(settings, names)


def test_scripted_session_in_order_and_shuffled(stream_settings, stream_topics, unique):
    tenant = unique("acme")
    events, expected = scripted_session(tenant)
    s1 = stream_settings()
    ordered = _run(s1, stream_topics(s1), events, expected)
    _check(ordered, expected)

    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    s2 = stream_settings()
    out = _run(s2, stream_topics(s2), shuffled, expected)
    _check(out, expected)
    key = {"preferences": "event_id", "memory": "event_id"}
    for field, k in key.items():
        assert sorted(ordered[field], key=lambda r: r[k]) == sorted(out[field], key=lambda r: r[k]), field
    fa, fb = _final_labels(ordered["labels"]), _final_labels(out["labels"])
    for iid in fa:  # same inputs, same final label: id, score, confidence, lineage
        assert {k: v for k, v in fa[iid].items() if k != "trigger"} == {
            k: v for k, v in fb[iid].items() if k != "trigger"
        }


def test_replay_from_offset_zero_adds_no_pair_ids(stream_settings, stream_topics, unique):
    tenant = unique("acme")
    events, expected = scripted_session(tenant)
    s = stream_settings()
    names = stream_topics(s)
    first = _run(s, names, events, expected)
    pair_ids = {p["event_id"] for p in first["preferences"]}
    n_out = {k: len(v) for k, v in first.items()}

    # The same app (its state in the changelogs) re-reads every input from offset 0.
    admin = AdminClient(s.kafka_client_config())
    tps = [TopicPartition(t, p, 0) for t in names.inputs() for p in range(3)]
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(s.stream_app_id, tps)])[
        "" or s.stream_app_id
    ].result(30)
    with StreamService(s, names) as svc:
        svc.wait_ready(60)
        assert wait_until(lambda: svc.stats.inputs >= len(events), 60)
        time.sleep(3 * s.label_window_s)
    again = read_outputs(s, names)
    assert {p["event_id"] for p in again["preferences"]} == pair_ids
    assert {k: len(v) for k, v in again.items()} == n_out, (
        "state remembered every joined event: no output at all"
    )

    # A fresh app (no state) over the same inputs derives the same pair ids.
    s2 = stream_settings()
    fresh_names = TopicNames(**{**names.__dict__, "labels": names.labels, "preferences": names.preferences})
    with StreamService(s2, fresh_names) as svc:
        svc.wait_ready(60)
        assert wait_until(lambda: svc.stats.pairs >= len(pair_ids), 60)
        time.sleep(3 * s.label_window_s)
    fresh = read_outputs(s, names)
    assert {p["event_id"] for p in fresh["preferences"]} == pair_ids
