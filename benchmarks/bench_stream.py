"""Stream processors: labeled interactions/s of one worker vs a plain consume-and-decode loop.

Workload: N interactions, each with two outcomes (ACCEPTED, COPIED), already in the input
topics (3 partitions). Measured side by side on the same topics:

* baseline: one confluent-kafka consumer, ``consume(10_000)`` + Avro decode of every record;
* hfloop: one StreamService (faust worker thread) from start to the N-th label, and the
  same run under cProfile, whose time is bucketed by where it goes.
"""

from __future__ import annotations

import cProfile
import pstats
import time
import uuid
from collections import defaultdict
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.common import BenchContext
from hfloop.events.serde import Serde
from hfloop.events.topics import TOPICS, key_of
from hfloop.sdk import events as ev
from hfloop.stream.app import TopicNames
from hfloop.stream.service import StreamService

CONTRACT = {"interactions": "hfloop.interactions", "feedback": "hfloop.feedback", "outcomes": "hfloop.outcomes",
            "labels": "hfloop.labels", "preferences": "hfloop.preferences", "memory": "hfloop.memory",
            "dlq": "hfloop.dlq"}  # fmt: skip


def _topics(ctx: BenchContext) -> TopicNames:
    names = TopicNames.suffixed(f"bench{uuid.uuid4().hex[:6]}")
    admin = AdminClient(ctx.settings().kafka_client_config())
    new = [NewTopic(getattr(names, f), 3, 1, config=TOPICS[c].config()) for f, c in CONTRACT.items()]
    for fut in admin.create_topics(new).values():
        fut.result(30)
    time.sleep(1)
    return names


def _produce(ctx: BenchContext, names: TopicNames, n: int, serde: Serde) -> None:
    p = Producer(ctx.settings().producer_config())
    tenant = "bench"
    for i in range(n):
        iid = f"b{i}"
        inter = ev.interaction(tenant_id=tenant, agent_id="bench", prompt=f"question {i}", response=f"answer {i}",
                               interaction_id=iid, session_id=f"s{i}", retrieved_doc_ids=["d1", "d2"])  # fmt: skip
        p.produce(
            names.interactions, serde.encode("Interaction", inter), key_of("hfloop.interactions", inter)
        )
        for kind in ("ACCEPTED", "COPIED"):
            o = ev.outcome(tenant_id=tenant, interaction_id=iid, kind=kind)
            p.produce(names.outcomes, serde.encode("Outcome", o), key_of("hfloop.outcomes", o))
        if i % 2000 == 0:
            p.poll(0)
    p.flush(120)


def _baseline(ctx: BenchContext, names: TopicNames, n: int, serde: Serde) -> float:
    c = Consumer(ctx.settings().consumer_config(f"bench-raw-{uuid.uuid4().hex[:6]}"))
    tps = [TopicPartition(t, p, 0) for t in (names.interactions, names.outcomes) for p in range(3)]
    c.assign(tps)
    want, got = 3 * n, 0
    start = time.perf_counter()
    while got < want:
        for m in c.consume(10_000, timeout=1.0):
            if m.error():
                continue
            serde.decode(m.value())
            got += 1
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed


def _stream(ctx: BenchContext, names: TopicNames, n: int, profile: bool) -> tuple[float, float, Any]:
    s = ctx.settings(stream_app_id=f"bench-{uuid.uuid4().hex[:6]}", label_window_s=0.5, stream_tick_s=0.1)
    prof = cProfile.Profile() if profile else None

    class Profiled(StreamService):
        def _run(self) -> None:
            if prof is None:
                return super()._run()
            prof.enable()
            try:
                super()._run()
            finally:
                prof.disable()

    svc = Profiled(s, names)
    start = time.perf_counter()
    svc.start()
    consumed = 0.0
    try:
        while svc.stats.labels < n:
            if svc.error is not None:
                raise RuntimeError(f"stream worker failed: {svc.error!r}")
            if not consumed and svc.stats.inputs >= 3 * n:
                consumed = time.perf_counter() - start
            time.sleep(0.02)
        labeled = time.perf_counter() - start
    finally:
        svc.stop()
    return consumed or labeled, labeled, prof


BUCKETS = [("faust/mode (streams, conductor, tables, agents)", ("/faust/", "/mode/")),
           ("aiokafka (fetch, produce, protocol)", ("/aiokafka/",)),
           ("asyncio event loop", ("/asyncio/", "select.epoll", "_contextvars")),
           ("Avro encode/decode (fastavro, serde)", ("fastavro", "/hfloop/events/")),
           ("hfloop stream logic (state, labels, pairs)", ("/hfloop/stream/",)),
           ("orjson (state, facts)", ("orjson",))]  # fmt: skip


def _buckets(prof: cProfile.Profile) -> list[dict[str, Any]]:
    stats = pstats.Stats(prof)
    total = 0.0
    acc: dict[str, float] = defaultdict(float)
    for (file, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tt
        where = f"{file}:{func}"
        for name, needles in BUCKETS:
            if any(x in where for x in needles):
                acc[name] += tt
                break
        else:
            acc["other (idle waits in other threads, builtins, logging)"] += tt
    return [
        {"where": k, "share_%": round(100 * v / total, 1)}
        for k, v in sorted(acc.items(), key=lambda kv: -kv[1])
    ]


def run(ctx: BenchContext) -> dict[str, Any]:
    n = 2_000 if ctx.quick else 20_000
    serde = Serde()
    names = _topics(ctx)
    _produce(ctx, names, n, serde)
    raw_s = _baseline(ctx, names, n, serde)
    consumed_s, labeled_s, _ = _stream(ctx, names, n, profile=False)
    names_p = _topics(ctx)
    _produce(ctx, names_p, min(n, 5_000), serde)
    _, prof_s, prof = _stream(ctx, names_p, min(n, 5_000), profile=True)
    raw_rate, stream_rate = n / raw_s, n / labeled_s
    table = [
        {"loop": "confluent-kafka consume + Avro decode", "interactions": n, "seconds": round(raw_s, 2),
         "interactions_per_s": round(raw_rate), "records_per_s": round(3 * n / raw_s)},
        {"loop": "hfloop stream worker (faust): all inputs consumed", "interactions": n, "seconds": round(consumed_s, 2),
         "interactions_per_s": round(n / consumed_s), "records_per_s": round(3 * n / consumed_s)},
        {"loop": "hfloop stream worker (faust): N-th label out", "interactions": n, "seconds": round(labeled_s, 2),
         "interactions_per_s": round(stream_rate), "records_per_s": round(3 * n / labeled_s)},
    ]  # fmt: skip
    profile = _buckets(prof)
    notes = ("Time of the stream worker under cProfile (same workload, ≤5,000 interactions), by where it goes: "
             + "; ".join(f"{r['where']} {r['share_%']}%" for r in profile)
             + ". The worker includes start-up, partition assignment and the 0.5 s label window; "
             "see docs/stream.md for what the figures mean and what would lift them.")  # fmt: skip
    return {
        "summary": (f"One stream worker labeled {stream_rate:,.0f} interactions/s (interaction + 2 outcomes each) vs "
                    f"{raw_rate:,.0f}/s for a plain confluent-kafka consume-and-decode loop: ratio "
                    f"{stream_rate / raw_rate:.3f}. Target 20,000/s: {'met' if stream_rate >= 20_000 else 'not met'}."),
        "table": table,
        "profile": profile,
        "ratio": round(stream_rate / raw_rate, 4),
        "notes": notes,
    }  # fmt: skip
