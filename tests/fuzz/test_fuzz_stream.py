"""Hostile input through the real processors: 3,300 bad records (every category of the serde
corpus plus what only a processor can judge) interleaved with good traffic on the stream's input
topics, a real StreamService and the analytics sink on embedded chDB over the same corpus, the
per-record function under hypothesis, and ``hfloop dlq list|replay`` on what the stream dead-lettered.

Every bad record must be dead-lettered exactly once with its origin and a reason; every good
interaction gets its expected label; hostile-but-valid text comes out as the very same data."""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

for _wing in ("stream", "analytics"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / _wing))
from analytics_helpers import start_group_at_end, wait_for  # noqa: E402
from corpus import (  # noqa: E402
    FIELD_OF,
    HOSTILE_TEXT,
    RECORD_OF,
    STREAM_BAD_KINDS,
    StreamInput,
    hostile_corrections,
    stream_garbage,
)
from stream_helpers import CONTRACT, create_stream_topics, read_topic, wait_until  # noqa: E402
from stream_load import sessions  # noqa: E402

from hfloop.analytics.batch import Batch  # noqa: E402
from hfloop.analytics.sink import AnalyticsService, ClickHouseWriter  # noqa: E402
from hfloop.analytics.tables import TOPIC_TABLE  # noqa: E402
from hfloop.config import Settings, reset_settings_cache  # noqa: E402
from hfloop.events.kafka import create_topics  # noqa: E402
from hfloop.events.schemas import event_time_problem  # noqa: E402
from hfloop.events.serde import DECODE_REASONS, DecodeError, Serde  # noqa: E402
from hfloop.sdk import events as ev  # noqa: E402
from hfloop.stream import dlq  # noqa: E402
from hfloop.stream import state as sm  # noqa: E402
from hfloop.stream.app import StreamApp, TopicNames, _Batch  # noqa: E402
from hfloop.stream.logic import derived_id, invalid_reason  # noqa: E402
from hfloop.stream.service import StreamService  # noqa: E402

SERDE = Serde()
STREAM_REASONS = {"undecodable", "invalid", "processing_error", "orphan", "duplicate"}
N_BAD = 3300  # with the 8,000 serde records and 2,500 requests: 13,800 hostile inputs in all
N_SESSION_INTERACTIONS = 600
# ClickHouse's Avro reader would store these although the serde refuses them; the sink screens
# them out (analytics/batch.py). test_sink_dead_letters_what_the_serde_rejects covers them.
SINK_MISREADS = ("trailing", "utf8_in_place")


@dataclass
class Corpus:
    tenant: str
    inputs: list[StreamInput]
    labels: set[str]  # the final label id of every good interaction
    pairs: set[str]
    hostile: dict[str, tuple[str, str]]  # memory id -> (prompt, corrected answer), all hostile text
    orphans: list[StreamInput] = field(default_factory=list)


def build_corpus(tenant: str, seed: int = 8) -> Corpus:
    """Good sessions and hostile corrections interleaved with the bad records; the relational
    bad ones (a second interaction under a joined id, another tenant's feedback) come after the
    interactions they point at."""
    rng = random.Random(seed)
    events, expected = sessions(tenant, N_SESSION_INTERACTIONS)
    hostile = hostile_corrections(tenant, 2)
    good = [_good(name, rec, "good") for name, rec in events] + [_good(n, r, "hostile") for n, r in hostile]
    half = len(good) // 2
    targets = [i.key.decode() for i in good[:half] if i.field == "interactions" and i.key]
    bad = list(stream_garbage(rng, tenant, N_BAD, targets))
    free = [n for n, b in enumerate(bad) if b.kind not in ("tenant_mismatch", "duplicate_interaction")]
    first = set(free[: len(bad) // 3])
    early = [b for n, b in enumerate(bad) if n in first]
    late = [b for n, b in enumerate(bad) if n not in first]
    inputs = _interleave(rng, good[:half], early) + _interleave(rng, good[half:], late)
    labels = set(expected["labels"])
    memory = {}
    inter = {r["interaction_id"]: r for n, r in hostile if n == "Interaction"}
    for name, rec in hostile:
        if name == "Feedback":
            i = inter[rec["interaction_id"]]
            labels.add(
                derived_id("label", tenant, i["interaction_id"], *sorted([i["event_id"], rec["event_id"]]))
            )
            memory[derived_id("memory", rec["event_id"])] = (i["messages"][-1]["content"], rec["correction"])
    orphans = [b for b in bad if b.kind == "orphan"]
    return Corpus(tenant, inputs, labels, expected["pairs"], memory, orphans)


def _good(name: str, rec: dict[str, Any], kind: str) -> StreamInput:
    return StreamInput(FIELD_OF[name], rec["interaction_id"].encode(), SERDE.encode(name, rec), kind, None)


def _interleave(rng: random.Random, a: list[StreamInput], b: list[StreamInput]) -> list[StreamInput]:
    """A random merge that keeps the order within ``a`` and within ``b``."""
    flags = [False] * len(a) + [True] * len(b)
    rng.shuffle(flags)
    ia, ib = iter(a), iter(b)
    return [next(ib) if f else next(ia) for f in flags]


Origin = tuple[str, int, int]


def produce(s: Settings, topic_of: dict[str, str], inputs: list[StreamInput]) -> list[Origin]:
    """Produce in order (one idempotent producer keeps each partition's order); returns each
    record's (topic, partition, offset) as the broker acknowledged it."""
    origins: list[Origin | None] = [None] * len(inputs)
    errors: list[str] = []
    p = Producer(s.producer_config())
    for n, item in enumerate(inputs):

        def delivered(err: Any, msg: Any, n: int = n) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                origins[n] = (msg.topic(), msg.partition(), msg.offset())

        p.produce(topic_of[item.field], item.value, item.key, on_delivery=delivered)
        if n % 1000 == 999:
            p.poll(0)
    assert p.flush(60) == 0 and not errors, errors[:3]
    assert all(o is not None for o in origins)
    return origins  # type: ignore[return-value]


# --- the per-record function (first: no stream thread may touch `random` while hypothesis draws) ---
@pytest.fixture(scope="module")
def offline_app(tmp_path_factory: pytest.TempPathFactory) -> StreamApp:
    """The stream app, never started: its per-record path needs no broker."""
    s = Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path_factory.mktemp("offline"))
    return StreamApp(s, TopicNames.suffixed("offline"), serde=SERDE, partitions=3)


def feed(
    app: StreamApp, batch: _Batch, topic: str, key: bytes | None, value: bytes, offset: int
) -> list[Any]:
    """``_on_input`` on one message; returns the dead letters it added, after checking that
    everything the batch commit will do with its effects and states can be done."""
    before = len(batch.fx.dead)
    app._on_input(SimpleNamespace(topic=topic, partition=0, offset=offset, key=key, value=value), batch, 1e9)
    for name, records in (("Label", batch.fx.labels), ("PreferencePair", batch.fx.pairs),
                          ("MemoryUpdate", batch.fx.memory), ("DeadLetter", batch.fx.dead)):  # fmt: skip
        for rec in records:
            SERDE.encode(name, rec)
    for _, st_ in batch.dirty.values():
        assert st_ is None or orjson.loads(orjson.dumps(st_))["p"] == 0
    return batch.fx.dead[before:]


SCALES = st.sampled_from(["THUMBS", "STARS5", "SCORE"])
TEXT = st.text(max_size=12) | st.sampled_from(HOSTILE_TEXT)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
FEEDBACK = st.fixed_dictionaries({
    "kind": st.sampled_from(["RATING", "CORRECTION", "PREFERENCE", "DEMONSTRATION", "COMMENT"]),
    "source": st.sampled_from(["EXPLICIT", "IMPLICIT"]),
    "annotator_id": TEXT,
    "rating": st.none() | st.fixed_dictionaries({"scale": SCALES, "value": FLOATS}),
    "correction": st.none() | TEXT,
    "demonstration": st.none() | TEXT,
    "comparison": st.none() | st.fixed_dictionaries({"response_a": TEXT | st.just("r"), "response_b": TEXT,
                                                     "choice": st.sampled_from(["A", "B", "TIE"]),
                                                     "strength": st.none() | FLOATS}),
})  # fmt: skip
OUTCOME = st.fixed_dictionaries({"kind": st.sampled_from(ev.OUTCOME_KINDS), "custom_kind": st.none() | TEXT,
                                 "value": st.none() | FLOATS, "text": st.none() | TEXT})  # fmt: skip
COMMON = st.fixed_dictionaries({"event_id": st.sampled_from(["e1", "e2", "e3", ""]) | TEXT,
                                "tenant_id": st.sampled_from(["t", "t", "t2", " "]),
                                "interaction_id": st.sampled_from(["i1", "i1", "i2", ""]),
                                "event_time": st.integers(-(2**63), 2**63 - 1)})  # fmt: skip


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes | None, bytes]:
    """(record field, key, value): mostly schema-valid records with hostile field values, some
    of them mutated at the byte level, some arbitrary bytes."""
    how = draw(st.sampled_from(["record", "record", "record", "mutated", "bytes"]))
    if how == "bytes":
        return (
            draw(st.sampled_from(list(RECORD_OF))),
            draw(st.none() | st.binary(max_size=8)),
            draw(st.binary()),
        )
    name = draw(st.sampled_from(list(FIELD_OF)))
    common = draw(COMMON)
    if name == "Interaction":
        rec = ev.interaction(tenant_id="t", agent_id=draw(TEXT), prompt=draw(st.lists(
            st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", ""]), "content": TEXT}),
            max_size=3)), response=draw(st.just("r") | TEXT), session_id=draw(TEXT) or "s")  # fmt: skip
    elif name == "Feedback":
        rec = ev.feedback(tenant_id="t", interaction_id="i1", kind="COMMENT", annotator_id="u") | draw(
            FEEDBACK
        )
    else:
        rec = ev.outcome(tenant_id="t", interaction_id="i1", kind="ACCEPTED") | draw(OUTCOME)
    rec |= common
    value = SERDE.encode(name, rec)
    if how == "mutated":
        at = draw(st.integers(0, len(value)))
        cut = draw(st.integers(0, 4))
        value = value[:at] + draw(st.binary(max_size=4)) + value[at + cut :]
    key = draw(st.sampled_from([rec["interaction_id"].encode()] * 4 + [None, b"i1", b"i2"]))
    return FIELD_OF[name] if draw(st.integers(0, 9)) else draw(st.sampled_from(list(RECORD_OF))), key, value


def rejected(app: StreamApp, topic: str, key: bytes | None, value: bytes) -> str | None:
    """The reason the stream must refuse this message before it touches any state (the contract:
    undecodable, or decodable but invalid), or None."""
    try:
        name, rec = SERDE.decode(value)
    except DecodeError:
        return "undecodable"
    if name != app.names.inputs()[topic] or invalid_reason(name, rec, key):
        return "invalid"
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=6))
def test_per_record_processing_returns_a_dead_letter_or_a_state_never_raises(
    offline_app: StreamApp, msgs: list[tuple[str, bytes | None, bytes]]
) -> None:
    app, batch = offline_app, _Batch()
    fed: dict[int, tuple[str, bytes]] = {}
    for offset, (fld, key, value) in enumerate(msgs):
        topic = getattr(app.names, fld)
        fed[offset] = (topic, value)
        before = batch.dirty.get(key, (0, None))[1] if key is not None else None
        before_json = orjson.dumps(before)
        why = rejected(app, topic, key, value)
        dead = feed(app, batch, topic, key, value, offset)
        for d in dead:  # this message's, or a pending one's that it joined (another tenant's)
            assert d["reason"] in STREAM_REASONS - {"processing_error"}, d["error"]
            assert d["error"].strip() and fed[d["origin_offset"]] == (d["origin_topic"], bytes(d["payload"]))
        if why is not None:
            assert [(d["reason"], d["origin_offset"]) for d in dead] == [(why, offset)]
            after = batch.dirty.get(key, (0, None))[1] if key is not None else None
            assert orjson.dumps(after) == before_json, "a refused record leaves the state alone"
        else:
            assert batch.dirty[key][1] is not None, "an accepted record is in its join state"
    for _, st_ in batch.dirty.values():  # the timer's path over whatever state the inputs left
        if st_ is not None:
            _, fx = sm.on_tick(st_, 2e9, app.ctx)
            for rec in fx.labels:
                SERDE.encode("Label", rec)
            for rec in fx.dead:
                assert rec["reason"] == "orphan" and SERDE.encode("DeadLetter", rec)


def test_negative_event_time_is_dead_lettered_as_invalid(offline_app: StreamApp) -> None:
    batch = _Batch()
    inter = ev.interaction(tenant_id="t", agent_id="a", prompt="q", response="r", interaction_id="n1")
    assert not feed(
        offline_app, batch, offline_app.names.interactions, b"n1", SERDE.encode("Interaction", inter), 0
    )
    late = ev.outcome(tenant_id="t", interaction_id="n1", kind="DELETED", event_time=-86_400_000)
    dead = feed(offline_app, batch, offline_app.names.outcomes, b"n1", SERDE.encode("Outcome", late), 1)
    assert [d["reason"] for d in dead] == ["invalid"]


# --- the stream ---------------------------------------------------------------------------------
@dataclass
class StreamRun:
    settings: Settings
    names: TopicNames
    svc: StreamService
    corpus: Corpus
    origins: list[Origin]
    seconds: float


@pytest.fixture(scope="module")
def stream_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamRun]:
    tag = f"fz{random.randrange(16**8):08x}"
    s = Settings(kafka_bootstrap=kafka_bootstrap, data_dir=tmp_path_factory.mktemp("stream"),
                 stream_app_id=f"stream-{tag}", label_window_s=1.0, join_grace_s=4.0, stream_tick_s=0.2,
                 stream_commit_interval_s=0.2)  # fmt: skip
    names = TopicNames.suffixed(tag)
    create_stream_topics(s, names, 3)
    corpus = build_corpus(tag)
    svc = StreamService(s, names).start()
    try:
        svc.wait_ready(60)
        started = time.monotonic()
        origins = produce(s, {f: getattr(names, f) for f in RECORD_OF}, corpus.inputs)
        total = len(corpus.inputs)
        done = wait_until(lambda: svc.stats.inputs >= total and svc.stats.dead >= N_BAD, 90, every=0.2)
        assert done, svc.stats
        yield StreamRun(s, names, svc, corpus, origins, time.monotonic() - started)
    finally:
        svc.stop()


def test_stream_dead_letters_every_bad_record_once_with_origin_and_reason(stream_run: StreamRun) -> None:
    run, corpus = stream_run, stream_run.corpus
    svc = run.svc
    assert svc.error is None and svc._thread is not None and svc._thread.is_alive(), svc.error
    want = {o: i for o, i in zip(run.origins, corpus.inputs, strict=True) if i.reason}
    kinds = Counter(i.kind for i in want.values())
    assert len(want) == N_BAD and set(kinds) == set(STREAM_BAD_KINDS) and min(kinds.values()) >= 150
    dead = read_topic(run.settings, run.names.dlq, "DeadLetter")
    got = Counter((d["origin_topic"], d["origin_partition"], d["origin_offset"]) for d in dead)
    assert not [o for o, n in got.items() if n > 1], "a bad record dead-lettered twice"
    assert not set(got) - set(want), "a good record was dead-lettered"
    missing = Counter(want[o].kind for o in set(want) - set(got))
    assert not missing, f"bad records lost: {missing}"
    by_origin = {(d["origin_topic"], d["origin_partition"], d["origin_offset"]): d for d in dead}
    wrong = Counter(
        (i.kind, i.reason, by_origin[o]["reason"])
        for o, i in want.items()
        if by_origin[o]["reason"] != i.reason
    )
    assert not wrong, f"(category, expected, got): {wrong}"
    assert all(d["error"].strip() and d["processor"] == run.settings.stream_app_id for d in dead)
    assert all(bytes(by_origin[o]["payload"]) == i.value and by_origin[o]["key"] == i.key for o, i in want.items()), (
        "the original bytes and key are kept for replay"
    )  # fmt: skip
    assert svc.stats.dead == N_BAD and svc.stats.by_reason == dict(Counter(i.reason for i in want.values()))
    print(f"\nstream: {len(corpus.inputs)} records ({N_BAD} bad) processed in {run.seconds:.1f}s; "
          f"dead letters by reason {dict(sorted(svc.stats.by_reason.items()))}")  # fmt: skip


def test_stream_labels_good_traffic_and_keeps_hostile_text_verbatim(stream_run: StreamRun) -> None:
    run, corpus = stream_run, stream_run.corpus
    s, names = run.settings, run.names
    final: dict[str, dict[str, Any]] = {}

    def final_labels() -> set[str]:
        for lab in read_topic(s, names.labels, "Label"):
            if lab["interaction_id"] not in final or lab["version"] > final[lab["interaction_id"]]["version"]:
                final[lab["interaction_id"]] = lab
        return {lab["event_id"] for lab in final.values()}

    wait_until(lambda: final_labels() >= corpus.labels, 30, every=1)  # a slow machine's last windows
    bad_ids = {iid for iid in final if "-bad-" in iid or "-orphan-" in iid}
    assert not bad_ids, f"labels for interactions only bad records named: {sorted(bad_ids)[:3]}"
    assert final_labels() == corpus.labels, (
        "every good interaction has exactly its expected final label (garbage aimed at it changed nothing)"
    )
    pairs: list[dict[str, Any]] = []

    def all_pairs() -> bool:  # session groups close a window after their last label
        pairs[:] = read_topic(s, names.preferences, "PreferencePair")
        return {p["event_id"] for p in pairs} >= corpus.pairs

    assert wait_until(all_pairs, 30, every=1), (
        f"{len(corpus.pairs - {p['event_id'] for p in pairs})} pairs missing"
    )
    memory = {m["memory_id"]: m for m in read_topic(s, names.memory, "MemoryUpdate")}
    assert {k: (m["situation"], m["corrected_answer"]) for k, m in memory.items()} == corpus.hostile
    chosen = {p["chosen"] for p in pairs if p["source"] == "CORRECTION"}
    assert chosen == {fix for _, fix in corpus.hostile.values()} and set(HOSTILE_TEXT) <= chosen
    # Still alive and processing: new traffic after the storm is labeled.
    before = run.svc.stats.labels
    after, _ = sessions(corpus.tenant + "-after", 2)
    produce(s, {f: getattr(names, f) for f in RECORD_OF}, [_good(n, r, "good") for n, r in after])
    assert wait_until(lambda: run.svc.stats.labels >= before + 2, 30), run.svc.stats
    assert run.svc.error is None


def test_dlq_list_shows_reasons_and_replay_joins_orphans(
    stream_run: StreamRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, corpus = stream_run, stream_run.corpus
    s, names, svc = run.settings, run.names, run.svc
    monkeypatch.setenv("HFLOOP_KAFKA_BOOTSTRAP", s.bootstrap)
    monkeypatch.setenv("HFLOOP_DATA_DIR", str(s.data_dir))
    cli = CliRunner()

    def invoke(*args: str) -> str:
        reset_settings_cache()  # the CLI reads its settings from the environment set above
        try:
            result = cli.invoke(dlq.app, [*args, "--topic", names.dlq])
        finally:
            reset_settings_cache()
        assert result.exit_code == 0, result.output
        return result.output

    want = Counter(i.reason for i in corpus.inputs if i.reason)
    summary = ", ".join(f"{k}={v}" for k, v in sorted(want.items()))
    assert f"{N_BAD} dead letter(s): {summary}" in " ".join(invoke("list").split())
    rows = [json.loads(line) for line in invoke("list", "--json", "--limit", "100000").splitlines()]
    assert len(rows) == N_BAD and Counter(r["reason"] for r in rows) == want
    assert all(r["error"] and r["origin_offset"] >= 0 and r["origin_topic"] in names.inputs() for r in rows)
    orphans = [json.loads(line) for line in invoke("list", "--reason", "orphan", "--json").splitlines()]
    assert {r["reason"] for r in orphans} == {"orphan"} and len(orphans) == 50  # --limit's default

    # The interactions the orphans waited for finally arrive; replaying the orphans joins them.
    late = []
    for item in corpus.orphans:
        out = SERDE.decode_as(item.value, "Outcome")
        iid = out["interaction_id"]
        inter = ev.interaction(tenant_id=corpus.tenant, agent_id="fuzz", prompt="late", response="late answer",
                               interaction_id=iid, event_id=f"e-{iid}", event_time=out["event_time"] - 1)  # fmt: skip
        late.append(
            (inter, derived_id("label", corpus.tenant, iid, *sorted([inter["event_id"], out["event_id"]])))
        )
    seen = svc.stats.inputs
    produce(s, {f: getattr(names, f) for f in RECORD_OF}, [_good("Interaction", i, "good") for i, _ in late])
    assert wait_until(lambda: svc.stats.inputs >= seen + len(late), 30), svc.stats
    assert f"{len(late)} dead letter(s) would be replayed" in invoke(
        "replay", "--reason", "orphan", "--dry-run"
    )
    assert f"replayed {len(late)} dead letter(s)" in invoke("replay", "--reason", "orphan")

    def joined() -> bool:
        labels = {lab["event_id"] for lab in read_topic(s, names.labels, "Label")}
        return {label for _, label in late} <= labels

    assert wait_until(joined, 60, every=1), "replayed orphans joined their interactions"
    # A replayed record that fails again is a new dead letter (a new origin offset, a new id).
    again = [r["event_id"] for r in rows if r["reason"] == "invalid"][:3]
    assert "replayed 3 dead letter(s)" in invoke("replay", *[a for e in again for a in ("--event-id", e)])
    assert wait_until(lambda: svc.stats.dead >= N_BAD + 3, 30), svc.stats
    dead = read_topic(s, names.dlq, "DeadLetter")
    assert len(dead) == N_BAD + 3 and len({d["event_id"] for d in dead}) == N_BAD + 3
    assert Counter(d["reason"] for d in dead) == want + Counter(invalid=3), "orphans joined, no new orphans"
    assert svc.error is None


# --- the analytics sink -------------------------------------------------------------------------
def test_analytics_sink_dead_letters_undecodable_and_stores_the_rest_once(
    settings_factory: Any, unique: Any, tmp_path: Path
) -> None:
    import clickhouse_connect

    from hfloop.analytics import store

    s = settings_factory(analytics_batch_ms=200)
    create_topics(s)
    group = unique("sink")
    start_group_at_end(s, group)
    tag = unique("fz").replace("-", "")
    corpus = build_corpus(tag)
    inputs = [i for i in corpus.inputs if i.kind not in SINK_MISREADS] + skewed_times(tag, 300)
    origins = produce(s, {f: CONTRACT[f] for f in RECORD_OF}, inputs)
    rows: dict[str, set[tuple[str, str]]] = {t: set() for t in ("interactions", "feedback", "outcomes")}
    dead_want: dict[Origin, str] = {}
    for origin, item in zip(origins, inputs, strict=True):
        try:
            rec = SERDE.decode_as(item.value, RECORD_OF[item.field])
        except DecodeError as exc:
            dead_want[origin] = exc.reason
            continue
        if event_time_problem(rec["event_time"]):  # decodes, but outside 1970..9999: not stored
            dead_want[origin] = "invalid"
            continue
        rows[TOPIC_TABLE[CONTRACT[item.field]]].add((rec["tenant_id"], rec["event_id"]))
    core = {"empty", "bad_magic", "truncated", "unknown_schema", "wrong_record", "invalid_body", "invalid"}
    assert len(dead_want) > 1500 and core <= set(dead_want.values()) <= {*DECODE_REASONS, "invalid"}
    client = clickhouse_connect.get_client(dsn=f"chdb:///{tmp_path / 'chdb'}")
    store.migrate(client, "hfloop")
    service = AnalyticsService(s, client=client, group_id=group).start()
    try:
        assert service.ready.wait(60), service.failed
        total = sum(len(r) for r in rows.values())

        def stored() -> int:
            sql = " UNION ALL ".join(f"SELECT count() FROM hfloop.{t}" for t in rows)
            return sum(int(r[0]) for r in client.query(sql).result_rows)

        wait_for(lambda: stored() >= total and service.stats.dead_letters >= len(dead_want), 60, "the corpus")
        sql = ("SELECT origin_topic, origin_partition, origin_offset, reason FROM hfloop.dead_letters FINAL "
               "WHERE processor = 'analytics-sink'")  # fmt: skip
        wait_for(
            lambda: len(client.query(sql).result_rows) >= len(dead_want), 30, "dead letters in ClickHouse"
        )
        assert service.failed is None and service.stats.dead_letters == len(dead_want)
        got = {(t, p, o): r for t, p, o, r in client.query(sql).result_rows}
        assert got == dead_want, "each undecodable record dead-lettered once, with the serde's reason"
        tables = {r[0] for r in client.query("SHOW TABLES FROM hfloop").result_rows}
        assert set(TOPIC_TABLE.values()) <= tables, "the SQL in the text fields executed nowhere"
        for table, want in rows.items():
            have = client.query(f"SELECT tenant_id, event_id FROM hfloop.{table} FINAL").result_rows
            assert set(have) == want, table
            named = [k for k in want if k[1].strip()]
            assert len([r for r in have if r[1].strip()]) == len(named), f"{table}: each event stored once"
        fixes = client.query("SELECT correction FROM hfloop.feedback FINAL WHERE tenant_id = %(t)s AND "
                             "kind = 'CORRECTION'", parameters={"t": tag}).result_rows  # fmt: skip
        assert {r[0] for r in fixes} >= {fix for _, fix in corpus.hostile.values()} >= set(HOSTILE_TEXT)
        prompts = client.query("SELECT tupleElement(messages[1], 'content'), metadata['note'] FROM hfloop.interactions FINAL "
                               "WHERE tenant_id = %(t)s AND agent_id = 'fuzz'", parameters={"t": tag}).result_rows  # fmt: skip
        assert {p for p, _ in prompts} >= {p for p, _ in corpus.hostile.values()}
        assert {n for _, n in prompts} >= set(HOSTILE_TEXT)
    finally:
        service.stop()
        client.close()


def skewed_times(tenant: str, n: int) -> list[StreamInput]:
    """Outcomes from 1970 to 2033 and far in the future (2128-2191): hundreds of monthly partitions
    in one insert, which ClickHouse refuses by default (the sink stalled); and from 1906 to 1969
    (negative timestamps), which the serde decodes but the sink must dead-letter as invalid."""
    rng = random.Random(3)
    out = []
    for i in range(n):
        spans = (
            rng.randrange(0, 2 * 10**12),
            -rng.randrange(1, 2 * 10**12),
            rng.randrange(5 * 10**12, 7 * 10**12),
        )
        t = spans[i % 3]
        rec = ev.outcome(tenant_id=tenant, interaction_id=f"{tenant}-t{i}", kind="ACCEPTED", event_time=t,
                         event_id=f"{tenant}-t{i}")  # fmt: skip
        out.append(
            StreamInput(
                "outcomes", rec["interaction_id"].encode(), SERDE.encode("Outcome", rec), "skewed", None
            )
        )
    return out


def test_sink_dead_letters_what_the_serde_rejects(tmp_path: Path) -> None:
    import clickhouse_connect

    from hfloop.analytics import store

    client = clickhouse_connect.get_client(dsn=f"chdb:///{tmp_path / 'chdb'}")
    store.migrate(client, "hfloop")
    misread = [i for i in build_corpus("misread").inputs if i.kind in SINK_MISREADS]
    batch = Batch(SERDE)
    for n, item in enumerate(misread):
        batch.add(CONTRACT[item.field], 0, n, item.key, item.value)
    written = ClickHouseWriter(client, "hfloop").write(batch)
    client.close()
    assert sum(written.values()) == 0 and len(batch.dead) == len(misread) == 300
