"""Helpers of the chaos run: worker processes, the workload with its expected outputs, lag, topic reads."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from hfloop.config import Settings
from hfloop.events.serde import Serde
from hfloop.sdk import events as ev
from hfloop.stream.logic import derived_id

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stream"))
from stream_helpers import read_topic  # noqa: E402,F401  (re-exported: the chaos test reads topics with it)
from stream_load import sessions  # noqa: E402

from waiting import wait_until  # noqa: F401  (re-exported to this folder's tests)

SERDE = Serde()
T0 = 1_700_000_000_000
Event = tuple[str, dict[str, Any]]
INPUT_TOPICS = ["hfloop.interactions", "hfloop.feedback", "hfloop.outcomes"]

# faust's defaults (60 s) would stall the partitions of a kill -9'd worker for a minute. The
# values match the analytics sink's session.timeout.ms (10 s).
STREAM_GROUP_ENV = {
    "HFLOOP_STREAM_SESSION_TIMEOUT_S": "10",
    "HFLOOP_STREAM_HEARTBEAT_INTERVAL_S": "1",
    "HFLOOP_STREAM_REBALANCE_TIMEOUT_S": "20",
    # A worker stuck in recovery (seen once after the broker restart) exits and is restarted.
    "HFLOOP_STREAM_STUCK_TIMEOUT_S": "45",
}


def workload(tenant: str, n_interactions: int) -> tuple[list[Event], dict[str, set[str]]]:
    """The stream tests' sessions (rephrased then accepted), every 10th also rated thumbs-down."""
    return sessions(tenant, n_interactions, agent_id="chaos", rate_every=10)


def gateway_workload(tenant: str, n_corrections: int) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """Interactions each corrected by its own annotator, as the JSON the gateway takes (sent over
    HTTP, not the SDK). Expected: a label and a CORRECTION pair per interaction, and one memory
    point per correction (Qdrant point ids derive from the feedback event id)."""
    from hfloop.memory.logic import point_id

    out: list[dict[str, Any]] = []
    expected: dict[str, set[str]] = {"labels": set(), "pairs": set(), "memory": set()}
    for k in range(n_corrections):
        iid = f"{tenant}-c{k}"
        t = T0 + 5_000_000 + k * 1000
        inter = ev.interaction(tenant_id=tenant, agent_id="chaos", prompt=f"how do I reset device {k}?",
                               response=f"unplug it {k}", interaction_id=iid, event_id=f"e-{iid}",
                               event_time=t)  # fmt: skip
        fb = ev.feedback(tenant_id=tenant, interaction_id=iid, kind="CORRECTION", annotator_id=f"fixer-{k}",
                         correction=f"hold the reset button of device {k} for ten seconds", event_time=t + 50,
                         event_id=f"c-{iid}")  # fmt: skip
        out += [{"type": "interaction", **{k_: v for k_, v in inter.items() if k_ != "tenant_id"}},
                {"type": "feedback", **{k_: v for k_, v in fb.items() if k_ != "tenant_id"}}]  # fmt: skip
        expected["labels"].add(derived_id("label", tenant, iid, *sorted([inter["event_id"], fb["event_id"]])))
        expected["pairs"].add(derived_id("pair", "CORRECTION", fb["event_id"]))
        expected["memory"].add(point_id("memory", tenant, derived_id("memory", fb["event_id"])))
    return out, expected


def memory_points(folder: Path, tenant: str) -> Counter[str]:
    """Point ids of ``tenant`` in the correction memory of an embedded Qdrant folder (closed after)."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(folder))
    try:
        ids: Counter[str] = Counter()
        flt = models.Filter(
            must=[models.FieldCondition(key="tenant_id", match=models.MatchValue(value=tenant))]
        )
        for coll in client.get_collections().collections:
            if "memory_" not in coll.name:
                continue
            offset: Any = None
            while True:
                recs, offset = client.scroll(coll.name, scroll_filter=flt, limit=512, offset=offset)
                ids.update(str(r.id) for r in recs)
                if offset is None:
                    break
        return ids
    finally:
        client.close()


def garbage(n: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    """``n`` undecodable records (topic, key, value): every reader dead-letters them."""
    rnd = random.Random(seed)
    good = SERDE.encode("Outcome", ev.outcome(tenant_id="g", interaction_id="g", kind="ACCEPTED"))
    out = []
    for i in range(n):
        topic = INPUT_TOPICS[i % 3]
        key = f"garbage-{i}".encode()
        kind = i % 4
        if kind == 0:
            value = b"\x00" + rnd.randbytes(rnd.randint(1, 200))  # no hfloop framing
        elif kind == 1:
            value = good[: rnd.randint(10, len(good) - 1)]  # truncated body
        elif kind == 2:
            value = b""
        else:
            value = b"\xc3\x01" + rnd.randbytes(8) + b"\x02ab"  # unknown writer fingerprint
        out.append((topic, key, value))
    return out


class Proc:
    """One worker process in its own process group (so kill reaches everything it started)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.p: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.p = subprocess.Popen([sys.executable, *self.args], env=self.env, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.starts += 1

    def alive(self) -> bool:
        return self.p is not None and self.p.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.p is not None
            os.killpg(self.p.pid, sig)

    def kill9(self) -> None:
        if self.p is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(30)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGCONT+SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.p is None:
            return None
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGCONT)
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.p.returncode

    def tail(self, n: int = 4000) -> str:
        try:
            return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return f"--- {self.name}: no log ---"


def worker_env(settings: Settings, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")}
    env.update({"HFLOOP_KAFKA_BOOTSTRAP": settings.bootstrap, "HFLOOP_DATA_DIR": str(data_dir),
                "HFLOOP_LABEL_WINDOW_S": str(settings.label_window_s),
                "HFLOOP_JOIN_GRACE_S": str(settings.join_grace_s),
                "HFLOOP_STREAM_TICK_S": str(settings.stream_tick_s),
                "HFLOOP_STREAM_COMMIT_INTERVAL_S": str(settings.stream_commit_interval_s),
                "HFLOOP_KAFKA_CLIENT_LOG_LEVEL": "3", **STREAM_GROUP_ENV, **extra})  # fmt: skip
    return env


def group_lag(settings: Settings, group: str, topics: list[str]) -> dict[str, int]:
    """{topic[partition]: high watermark - committed offset} for every partition of ``topics``
    holding records (a partition with records and no commit counts its whole length)."""
    admin = AdminClient(settings.kafka_client_config())
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    committed = {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}
    c = Consumer(settings.consumer_config(f"lag-{uuid.uuid4().hex[:8]}"))
    try:
        md = c.list_topics(timeout=10).topics
        lag = {}
        for t in topics:
            for p in md[t].partitions:
                high = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                done = max(committed.get((t, p), 0), 0)
                if high - done > 0:
                    lag[f"{t}[{p}]"] = high - done
        return lag
    finally:
        c.close()
