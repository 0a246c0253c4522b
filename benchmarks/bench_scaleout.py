"""Scale-out: stream-stage throughput with 1 vs 2 stream worker processes on 4 partitions, the CPU
each process and the broker spend per interaction (where the next bottleneck is), and ClickHouse
bytes per event of the analytics sink.

Workload: N interactions with two outcomes each (sessions of two: rephrased+abandoned, then
accepted+copied), produced into fresh topics (4 partitions) once the workers have joined their
group. Each worker is a separate process (``python -m hfloop.stream --topic-suffix S``, the same
worker as ``hfloop worker --role stream``). Measured: from the first produced record until the
group has committed every input offset (all consumed) and until N labels are out.

    python -m benchmarks.run scaleout            # N=20,000
    python -m benchmarks.run scaleout --quick    # N=2,000
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.common import BenchContext
from hfloop.config import Settings
from hfloop.events.serde import Serde
from hfloop.events.topics import TOPICS, key_of
from hfloop.sdk import events as ev
from hfloop.stream.app import TopicNames

CONTRACT = {"interactions": "hfloop.interactions", "feedback": "hfloop.feedback", "outcomes": "hfloop.outcomes",
            "labels": "hfloop.labels", "preferences": "hfloop.preferences", "memory": "hfloop.memory",
            "dlq": "hfloop.dlq"}  # fmt: skip
PARTITIONS = 4
TICK = os.sysconf("SC_CLK_TCK")
STREAM_GROUP_ENV = {  # a kill -9'd or slow-starting worker's partitions move after 10 s, not 60
    "HFLOOP_STREAM_SESSION_TIMEOUT_S": "10",
    "HFLOOP_STREAM_HEARTBEAT_INTERVAL_S": "1",
    "HFLOOP_STREAM_REBALANCE_TIMEOUT_S": "20",
}


def workload(tenant: str, n: int) -> list[tuple[str, str, bytes, bytes]]:
    """(contract field, record name, key, value) for n interactions with two outcomes each."""
    serde = Serde()
    out = []
    for k in range(n // 2):
        sid = f"{tenant}-s{k}"
        for j, kinds in enumerate([("REPHRASED", "ABANDONED"), ("ACCEPTED", "COPIED")]):
            iid = f"{tenant}-{k}-{j}"
            t = 1_700_000_000_000 + k * 1000 + j * 100
            rec = ev.interaction(tenant_id=tenant, agent_id="bench", prompt=f"question {k}/{j}",
                                 response=f"answer {k}/{j}", interaction_id=iid, session_id=sid, event_time=t)  # fmt: skip
            out.append(
                (
                    "interactions",
                    "Interaction",
                    key_of("hfloop.interactions", rec),
                    serde.encode("Interaction", rec),
                )
            )
            for m, kind in enumerate(kinds):
                o = ev.outcome(
                    tenant_id=tenant, interaction_id=iid, kind=kind, session_id=sid, event_time=t + 10 + m
                )
                out.append(("outcomes", "Outcome", key_of("hfloop.outcomes", o), serde.encode("Outcome", o)))
    return out


def _create(settings: Settings, names: TopicNames) -> None:
    admin = AdminClient(settings.kafka_client_config())
    new = [NewTopic(getattr(names, f), PARTITIONS, 1, config=TOPICS[c].config()) for f, c in CONTRACT.items()]
    for fut in admin.create_topics(new).values():
        fut.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=10).topics
        if all(getattr(names, f) in md and all(p.leader >= 0 for p in md[getattr(names, f)].partitions.values())
               for f in CONTRACT):  # fmt: skip
            return
        time.sleep(0.2)


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK
    except (OSError, IndexError):
        return 0.0


def _lag(settings: Settings, group: str, topics: list[str]) -> int:
    admin = AdminClient(settings.kafka_client_config())
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    done = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in res.topic_partitions}
    c = Consumer(settings.consumer_config(f"lag-{uuid.uuid4().hex[:6]}"))
    try:
        return sum(c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1] - done.get((t, p), 0)
                   for t in topics for p in range(PARTITIONS))  # fmt: skip
    finally:
        c.close()


def _end_offsets(settings: Settings, topic: str) -> int:
    c = Consumer(settings.consumer_config(f"end-{uuid.uuid4().hex[:6]}"))
    try:
        return sum(
            c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)
        )
    finally:
        c.close()


def _members(settings: Settings, group: str) -> int:
    try:
        admin = AdminClient(settings.kafka_client_config())
        d = admin.describe_consumer_groups([group])[group].result(10)
        return len(d.members) if str(d.state).endswith("STABLE") else 0
    except Exception:
        return 0


def run_workers(ctx: BenchContext, workers: int, n: int) -> dict[str, Any]:
    suffix = f"so{workers}x{uuid.uuid4().hex[:6]}"
    names = TopicNames.suffixed(suffix)
    s = ctx.settings(stream_app_id=f"scale-{suffix}", label_window_s=0.5, stream_tick_s=0.2,
                     stream_commit_interval_s=0.5)  # fmt: skip
    _create(s, names)
    records = workload(suffix, n)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")}
    env.update({"HFLOOP_KAFKA_BOOTSTRAP": s.bootstrap, "HFLOOP_STREAM_APP_ID": s.stream_app_id,
                "HFLOOP_LABEL_WINDOW_S": "0.5", "HFLOOP_STREAM_TICK_S": "0.2",
                "HFLOOP_STREAM_COMMIT_INTERVAL_S": "0.5", "HFLOOP_KAFKA_CLIENT_LOG_LEVEL": "3", **STREAM_GROUP_ENV})  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(workers):
            wenv = {**env, "HFLOOP_DATA_DIR": str(ctx.workdir / suffix / f"w{i}")}
            log = (ctx.workdir / f"{suffix}-w{i}.log").open("ab")
            procs.append(subprocess.Popen([sys.executable, "-m", "hfloop.stream", "--topic-suffix", suffix],
                                          env=wenv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
        deadline = time.monotonic() + 180
        while _members(s, s.stream_app_id) != workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{workers} stream workers did not form a stable group")
            time.sleep(0.5)
        time.sleep(3)  # tables recovered, idle
        pids = [p.pid for p in procs]
        cpu0 = [_cpu_s(pid) for pid in pids] + [_cpu_s(ctx.broker.pid())]
        t0 = time.monotonic()
        prod = Producer(s.producer_config())
        for field, _, key, value in records:
            while True:
                try:
                    prod.produce(getattr(names, field), value, key)
                    break
                except BufferError:
                    prod.poll(0.05)
        prod.flush(60)
        t_produced = time.monotonic() - t0
        inputs = [names.interactions, names.outcomes]
        t_consumed = t_labels = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and (t_consumed is None or t_labels is None):
            now = time.monotonic() - t0
            if t_consumed is None and _lag(s, s.stream_app_id, inputs) == 0:
                t_consumed = now
            if t_labels is None and _end_offsets(s, names.labels) >= n:
                t_labels = now
            time.sleep(0.25)
        if t_consumed is None or t_labels is None:
            raise RuntimeError(f"{workers} workers did not finish {n} interactions in 600 s")
        cpu1 = [_cpu_s(pid) for pid in pids] + [_cpu_s(ctx.broker.pid())]
        used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
        span = max(t_consumed, t_labels)
        return {
            "workers": workers, "partitions": PARTITIONS, "interactions": n, "records": len(records),
            "produce_s": round(t_produced, 2), "consumed_s": round(t_consumed, 2), "labels_s": round(t_labels, 2),
            "interactions_per_s": round(n / t_labels),
            "worker_cpu_s": round(sum(used[:-1]), 2), "broker_cpu_s": round(used[-1], 2),
            "worker_cores_busy": round(sum(used[:-1]) / span, 2), "broker_cores_busy": round(used[-1] / span, 2),
            "worker_cpu_us_per_interaction": round(1e6 * sum(used[:-1]) / n),
            "broker_cpu_us_per_interaction": round(1e6 * used[-1] / n),
        }  # fmt: skip
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 15)
                p.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, 9)
                p.wait(10)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def clickhouse_bytes(ctx: BenchContext, n: int) -> list[dict[str, Any]]:
    """Bytes on disk per row, per table, after the sink stored ``n`` synthetic records of each kind
    (analytics.synth, the records the analytics benchmarks use) and the parts were merged."""
    import clickhouse_connect

    from hfloop.analytics import store, synth
    from hfloop.analytics.sink import AnalyticsService
    from hfloop.analytics.tables import RECORD_TABLE
    from hfloop.events.kafka import RecordProducer, create_topics

    settings = ctx.settings(analytics_batch_rows=50_000, analytics_batch_ms=1000)
    create_topics(settings)
    serde = Serde()
    producer = RecordProducer(settings, serde)
    tenant = f"cap-{uuid.uuid4().hex[:6]}"
    names = ["Interaction", "Feedback", "Outcome", "Label", "PreferencePair"]
    avro: dict[str, int] = dict.fromkeys(names, 0)
    for i in range(n):
        for name in names:
            rec = synth.record(name, i, tenant)
            avro[name] += len(serde.encode(name, rec))
            producer.send(name, rec)
    producer.flush(300)
    path = ctx.workdir / f"chdb-capacity-{tenant}"
    client = clickhouse_connect.get_client(dsn=f"chdb:///{path}")
    store.migrate(client, "hfloop")
    service = AnalyticsService(settings, client=client, group_id=f"capacity-{tenant}")
    service.start()
    tables = [RECORD_TABLE[name] for name in names]

    def stored() -> int:
        return sum(client.query(f"SELECT count() FROM hfloop.{t} WHERE tenant_id = %(t)s",
                                parameters={"t": tenant}).result_rows[0][0] for t in tables)  # fmt: skip

    deadline = time.monotonic() + 300
    while stored() < n * len(names) and time.monotonic() < deadline:
        time.sleep(0.5)
    service.stop()
    rows = []
    for name, t in zip(names, tables, strict=True):
        client.command(f"OPTIMIZE TABLE hfloop.{t} FINAL")
        r, disk, raw = client.query(
            "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
            "WHERE database = 'hfloop' AND table = %(t)s AND active", parameters={"t": t}
        ).result_rows[0]  # fmt: skip
        rows.append({"table": t, "rows": int(r), "avro_bytes_per_event": round(avro[name] / n),
                     "disk_bytes_per_row": round(disk / max(r, 1)),
                     "uncompressed_bytes_per_row": round(raw / max(r, 1)),
                     "disk_gb_per_million": round(disk / max(r, 1) * 1e6 / 1e9, 3)})  # fmt: skip
    client.close()
    return rows


def qdrant_bytes(ctx: BenchContext, n: int) -> dict[str, Any]:
    """Embedded Qdrant folder size and process memory for ``n`` correction points (two 384-d vectors
    each, the memory wing's payload), written through the memory store."""
    import numpy as np

    from hfloop.memory import logic
    from hfloop.memory.store import MemoryStore

    settings = ctx.settings(qdrant_path=ctx.workdir / "qdrant-capacity", embedder="hash")
    rss0 = _rss_mib()
    st = MemoryStore(settings, "hash-384", 384)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for k in range(0, n, 512):
        batch = []
        for i in range(k, min(n, k + 512)):
            v = rng.standard_normal((2, 384)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            mid = f"cap-{i}"
            payload = {"memory_id": mid, "tenant_id": "cap", "agent_id": "agent", "route": "default",
                       "situation": f"how do I reset the password of account {i} after the last update?",
                       "original_answer": "You cannot reset it.", "user_id": f"u{i % 50}",
                       "corrected_answer": f"Open settings, choose security, then reset; ticket {i}.",
                       "annotator_id": f"u{i % 50}", "visibility": "PRIVATE", "trust": 0.0, "trusted": False,
                       "reason": "correction", "source_event_ids": [mid, f"i-{i}"], "event_time": 0,
                       "created_ms": 0, "corroborated_by": []}  # fmt: skip
            batch.append((logic.point_id("memory", "cap", mid), v[0], v[1], payload))
        st.upsert_entries(batch)
    upsert_s = time.perf_counter() - t0
    count = st.count()
    rss1 = _rss_mib()
    st.close()
    folder = _du(settings.qdrant_folder)
    return {"points": count, "upsert_points_per_s": round(n / upsert_s), "folder_bytes_per_point": round(folder / n),
            "folder_gb_per_million": round(folder / n * 1e6 / 1e9, 2),
            "rss_mib_per_10k_points": round((rss1 - rss0) / n * 1e4, 1)}  # fmt: skip


def run(ctx: BenchContext) -> dict[str, Any]:
    n = 2_000 if ctx.quick else 20_000
    rows = [run_workers(ctx, 1, n), run_workers(ctx, 2, n)]
    ch = clickhouse_bytes(ctx, 5_000 if ctx.quick else 50_000)
    qd = qdrant_bytes(ctx, 5_000 if ctx.quick else 20_000)
    one, two = rows
    ratio = round(two["interactions_per_s"] / one["interactions_per_s"], 2)
    cores = os.cpu_count() or 1
    busy = two["worker_cores_busy"] + two["broker_cores_busy"]
    summary = (
        f"Stream stage on {PARTITIONS} partitions, {n:,} interactions (3 records each): 1 worker "
        f"{one['interactions_per_s']:,}/s, 2 worker processes {two['interactions_per_s']:,}/s, ratio {ratio}x. "
        f"Worker CPU {one['worker_cpu_us_per_interaction']} vs {two['worker_cpu_us_per_interaction']} us/interaction, "
        f"broker {one['broker_cpu_us_per_interaction']} vs {two['broker_cpu_us_per_interaction']} us/interaction; "
        f"with 2 workers the workers and the broker keep {busy:.2f} of the machine's {cores} cores busy."
    )
    notes = (
        "Next bottleneck: on this machine the cores themselves. Each interaction costs the worker its CPU time "
        "above (faust per-message machinery, docs/stream.md) and the broker the figure beside it; when the "
        "busy cores approach the machine's count, a second worker can only take CPU from the first and the "
        "broker. On a machine with a free core per worker and partitions >= workers the per-worker rate is the "
        "1-worker figure (the work is partitioned by interaction_id)."
    )
    return {"summary": summary, "table": rows, "ratio": ratio, "notes": notes, "clickhouse": ch, "qdrant": qd}
