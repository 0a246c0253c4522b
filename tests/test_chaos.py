"""Chaos run (`make chaos`): the server-mode topology as separate processes on a real broker,
faults injected while the SDK drives a fixed number of events, then every invariant checked.

Topology: one Kafka 4 broker of its own (KRaft, restarted once mid-run), the contract topics
with 3 partitions, 2 stream workers (`hfloop worker --role stream`) and the analytics sink
(`hfloop worker --role analytics`, embedded chDB in its own folder). Faults, from a seeded
schedule: kill -9 and restart of stream workers, one broker stop/start (same data dir), the
sink paused (SIGSTOP) past its 10 s session timeout and resumed, and undecodable records mixed
into the input topics.

Invariants: every produced input event is in ClickHouse exactly once by event_id (FINAL, the
analytics dedup rule); every expected final label and every expected pair (ids derived from the
inputs, docs/stream.md) is in ClickHouse once, and the pair topic holds no pair under another
id; no consumer group lags; the DLQ holds exactly the injected records, once per processor.

Not in the default `pytest` run (skipped unless `-m chaos` is given): it has not passed three
times in a row on the shared 2-core machine. Seen failing: after the rebalances, a faust stream
worker sometimes stops committing one partition (its records are processed, every label and pair
is out, but the committed offset stays behind the log end), so the "no consumer group lags"
invariant fails (seen twice; once it caught up after ~2 min); and once, 16 interactions produced
right after a kill -9 were committed by the group but never labeled (18 final labels and 14 pairs
never emitted). See the report of issue 8. CHAOS_N (interactions) and CHAOS_SEED tune the run.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict

import clickhouse_connect
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from chaos.chaos_helpers import (
    INPUT_TOPICS,
    Proc,
    garbage,
    group_lag,
    read_topic,
    wait_until,
    worker_env,
    workload,
)
from hfloop.config import Settings
from hfloop.events.kafka import create_topics
from hfloop.events.topics import TOPICS
from hfloop.kafka_local import LocalKafka, free_port
from hfloop.sdk import FeedbackClient

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

N = int(os.environ.get("CHAOS_N", "1500"))  # interactions (each with 2 outcomes; 1 in 20 rated)
SEED = int(os.environ.get("CHAOS_SEED", "8"))
N_BAD = 60
PRODUCE_S = 40.0  # the load is spread over this long, faults land inside it
KILLS = 3
PAUSE_S = 14.0  # > the sink's session.timeout.ms (10 s)


@pytest.fixture(autouse=True)
def _only_when_asked(request: pytest.FixtureRequest) -> None:
    if "chaos" not in (request.config.option.markexpr or ""):
        pytest.skip("the chaos run is not in the default run: `make chaos` (pytest -m chaos)")


def _ch_ids(client, table: str, tenant: str) -> tuple[Counter, int]:
    """(event_id -> copies after FINAL, raw row count) of one tenant in one table."""
    final = client.query(f"SELECT event_id, count() FROM hfloop.{table} FINAL WHERE tenant_id = %(t)s "
                         "GROUP BY event_id", parameters={"t": tenant}).result_rows  # fmt: skip
    raw = client.query(f"SELECT count() FROM hfloop.{table} WHERE tenant_id = %(t)s",
                       parameters={"t": tenant}).result_rows[0][0]  # fmt: skip
    return Counter({r[0]: r[1] for r in final}), raw


def test_chaos_run_loses_and_duplicates_nothing(tmp_path, capsys):
    rnd = random.Random(SEED)
    base = Settings()
    broker = LocalKafka(home=tmp_path / "kafka", port=free_port(), version=base.kafka_version,
                        cache_dir=base.cache_dir, heap="768m")  # fmt: skip
    procs: list[Proc] = []
    log: list[str] = []
    t_start = time.monotonic()

    def note(msg: str) -> None:
        log.append(f"{time.monotonic() - t_start:6.1f}s {msg}")

    try:
        broker.start()
        s = Settings(kafka_bootstrap=broker.bootstrap, data_dir=tmp_path / "data", label_window_s=2.0,
                     join_grace_s=600.0, stream_tick_s=0.5, stream_commit_interval_s=0.5)  # fmt: skip
        create_topics(s, partitions=3)
        cli = ["-m", "hfloop.cli", "worker", "--role"]
        streams = [Proc(f"stream-{i}", [*cli, "stream"], worker_env(s, tmp_path / f"stream-{i}"),
                        tmp_path / f"stream-{i}.log") for i in range(2)]  # fmt: skip
        sink = Proc(
            "analytics", [*cli, "analytics"], worker_env(s, tmp_path / "analytics"), tmp_path / "sink.log"
        )
        procs = [*streams, sink]
        for p in procs:
            p.start()

        def admin() -> AdminClient:
            # Short-lived: an admin client destroyed after the broker stopped blocks in rd_kafka_destroy.
            return AdminClient(s.kafka_client_config())

        def members(group: str) -> int:
            try:
                client = admin()  # referenced until the future resolves
                return len(client.describe_consumer_groups([group])[group].result(10).members)
            except Exception:
                return 0

        assert wait_until(lambda: members(s.stream_app_id) == 2 and members(s.analytics_group) == 1, 180), (
            "\n".join(p.tail() for p in procs)
        )
        note("topology up: 2 stream workers, analytics sink")

        tenant = f"chaos-{uuid.uuid4().hex[:8]}"
        events, expected = workload(tenant, N)
        bad = garbage(N_BAD, SEED)
        injected: set[tuple[str, int, int]] = set()
        errors: list[str] = []

        def on_bad(err, msg) -> None:
            if err is None:
                injected.add((msg.topic(), msg.partition(), msg.offset()))
            else:
                errors.append(f"garbage: {err}")

        def drive() -> None:
            try:
                raw = Producer(s.producer_config())
                chunks = 40
                with FeedbackClient(tenant, settings=s) as client:
                    for c in range(chunks):
                        t_chunk = time.monotonic()
                        for name, rec in events[c * len(events) // chunks : (c + 1) * len(events) // chunks]:
                            client.send(name, rec)
                        for topic, key, value in bad[c * N_BAD // chunks : (c + 1) * N_BAD // chunks]:
                            raw.produce(topic, value, key, on_delivery=on_bad)
                        raw.poll(0)
                        time.sleep(max(0.0, PRODUCE_S / chunks - (time.monotonic() - t_chunk)))
                    client.flush(180)
                if raw.flush(180):
                    errors.append("garbage not acknowledged")
            except Exception as exc:  # noqa: BLE001 - reported by the test
                errors.append(f"producer: {exc!r}")

        # The fault schedule, seeded: (time, action, argument).
        plan: list[tuple[float, str, int]] = []
        for _ in range(KILLS):
            t = rnd.uniform(3, PRODUCE_S + 10)
            plan += [(t, "kill", rnd.randrange(2)), (t + rnd.uniform(0.5, 4), "restart", -1)]
        t_pause = rnd.uniform(5, 20)
        plan += [(t_pause, "pause", 0), (t_pause + PAUSE_S, "resume", 0), (rnd.uniform(15, 30), "broker", 0)]
        plan.sort()
        unplanned = Counter()

        def supervise() -> None:
            """Restart a worker that died on its own (e.g. while the broker was down), and count it."""
            for p in procs:
                if not p.alive() and p.p is not None and p.p.returncode not in (None, -signal.SIGKILL):
                    unplanned[p.name] += 1
                    note(f"{p.name} exited with {p.p.returncode}: restart")
                    p.start()

        producer = threading.Thread(target=drive, daemon=True)
        t0 = time.monotonic()
        producer.start()
        note(f"driving {len(events)} events + {N_BAD} garbage records over {PRODUCE_S:.0f}s")
        for at, action, arg in plan:
            while time.monotonic() - t0 < at:
                supervise()
                time.sleep(0.2)
            if action == "kill":
                streams[arg].kill9()
                note(f"kill -9 {streams[arg].name}")
            elif action == "restart":
                for w in streams:
                    if not w.alive():
                        w.start()
                        note(f"restart {w.name}")
            elif action == "pause":
                sink.signal(signal.SIGSTOP)
                note("SIGSTOP analytics sink")
            elif action == "resume":
                sink.signal(signal.SIGCONT)
                note("SIGCONT analytics sink")
            elif action == "broker":
                broker.stop()
                note("broker stopped")
                time.sleep(2)
                broker.start()
                note("broker started (same data dir)")
        producer.join(300)
        assert not producer.is_alive() and not errors, errors
        note(f"all produced: {len(events)} events, {len(injected)} garbage records acknowledged")
        for w in streams:
            if not w.alive():
                w.start()

        def complete() -> bool:
            supervise()
            labels = {r["event_id"] for r in read_topic(s, "hfloop.labels", "Label")}
            pairs = {r["event_id"] for r in read_topic(s, "hfloop.preferences", "PreferencePair")}
            return labels >= expected["labels"] and pairs >= expected["pairs"]

        if wait_until(complete, 300, every=3):  # reported with the tally if not
            note("every expected label and pair is out")
        else:
            note("expected labels or pairs still missing after 300 s")
        all_topics = [t for t in TOPICS if t in admin().list_topics(timeout=10).topics]

        stream_topics = [*INPUT_TOPICS, f"{s.stream_app_id}-groups"]  # the group agent's input too

        def sink_caught_up() -> bool:
            supervise()
            return not group_lag(s, s.analytics_group, all_topics)

        assert wait_until(sink_caught_up, 180, every=2), (
            group_lag(s, s.analytics_group, all_topics),
            "\n".join(log + [p.tail() for p in procs]),
        )
        note("analytics group: no lag")
        # Checked, and reported after the other invariants, so a lag still shows the tally.
        if wait_until(lambda: not group_lag(s, s.stream_app_id, stream_topics), 180, every=2):
            note("stream group: no lag")
        else:
            note(f"stream group still lags after 180 s: {group_lag(s, s.stream_app_id, stream_topics)}")
        sink_rc = sink.stop()
        for w in streams:
            w.stop()
        note(f"workers stopped (sink exit {sink_rc})")
        assert sink_rc == 0, sink.tail()
        final_lag = {
            "stream": group_lag(s, s.stream_app_id, stream_topics),
            "analytics": group_lag(s, s.analytics_group, all_topics),
        }
        kafka_pairs = {r["event_id"] for r in read_topic(s, "hfloop.preferences", "PreferencePair")}
        kafka_labels = {r["event_id"] for r in read_topic(s, "hfloop.labels", "Label")}
        dlq = read_topic(s, "hfloop.dlq", "DeadLetter")
    finally:
        for p in procs:
            p.stop(30)
        broker.stop()

    # --- invariants (chDB is single-process: opened only now the sink has exited) ---------
    ch = clickhouse_connect.get_client(dsn=f"chdb:///{(tmp_path / 'analytics' / 'chdb').resolve()}")
    produced = Counter(rec["event_id"] for _, rec in events)
    assert all(c == 1 for c in produced.values())
    stored: Counter = Counter()
    raw_rows = 0
    for table in ("interactions", "outcomes", "feedback"):
        ids, raw = _ch_ids(ch, table, tenant)
        stored.update(ids)
        raw_rows += raw
    lost = set(produced) - set(stored)
    duplicated = {i for i, c in stored.items() if c > 1}
    extra = set(stored) - set(produced)
    label_ids, _ = _ch_ids(ch, "labels", tenant)
    pair_ids, _ = _ch_ids(ch, "preferences", tenant)
    dl_by_proc: dict[str, set] = defaultdict(set)
    dl_ids = Counter()
    for d in dlq:
        dl_by_proc[d["processor"]].add((d["origin_topic"], d["origin_partition"], d["origin_offset"]))
        dl_ids[d["event_id"]] += 1
    ch_dead = ch.query("SELECT count() FROM (SELECT event_id FROM hfloop.dead_letters FINAL)").result_rows[0][
        0
    ]
    missing_labels = expected["labels"] - kafka_labels
    missing_pairs = expected["pairs"] - kafka_pairs
    tally = (
        f"chaos tally: produced={len(produced)} stored={len(set(stored) & set(produced))} lost={len(lost)} "
        f"duplicated={len(duplicated)} extra={len(extra)} dead-lettered={len(dl_ids)} "
        f"(injected {len(injected)} x {len(dl_by_proc)} processors: "
        f"{ {k: len(v) for k, v in dl_by_proc.items()} }, in ClickHouse {ch_dead}) "
        f"raw rows={raw_rows} (redelivered copies merged away: {raw_rows - len(produced)}) "
        f"labels expected={len(expected['labels'])} never emitted={len(missing_labels)} in CH={len(expected['labels'] & set(label_ids))} "
        f"pairs expected={len(expected['pairs'])} never emitted={len(missing_pairs)} in CH={len(pair_ids)} unplanned restarts={dict(unplanned)} "
        f"lag at end: stream={sum(final_lag['stream'].values())} analytics={sum(final_lag['analytics'].values())} "
        f"N={N} seed={SEED} wall={time.monotonic() - t_start:.0f}s"
    )
    with capsys.disabled():
        print("\n" + "\n".join(log) + "\n" + tally)
    assert not lost, f"lost {len(lost)}: {sorted(lost)[:10]}"
    assert not missing_labels and not missing_pairs, (
        f"stream outputs lost: {len(missing_labels)} final labels, {len(missing_pairs)} pairs never emitted"
    )
    assert not duplicated and not extra, (sorted(duplicated)[:10], sorted(extra)[:10])
    assert all(label_ids[i] == 1 for i in expected["labels"]), "every expected final label once"
    assert set(pair_ids) == expected["pairs"] == kafka_pairs and all(c == 1 for c in pair_ids.values()), (
        "exactly the expected pairs, once each"
    )
    assert len(dl_by_proc) == 2 and all(v == injected for v in dl_by_proc.values()), (
        "the DLQ holds exactly the injected records, once per processor"
    )
    assert ch_dead == len(dl_ids) == 2 * N_BAD
    assert not final_lag["stream"] and not final_lag["analytics"], (
        f"consumer groups lag at the end (committed offsets behind the log end): {final_lag}"
    )
