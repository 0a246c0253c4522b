"""Faults on the real broker: garbage mixed into good input, and kill -9 of a worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from stream_helpers import SERDE, produce, read_topic, wait_until
from stream_load import garbage, sessions

from hfloop.stream.service import StreamService

# `make test` runs the crash test with 2,000 interactions; STREAM_CRASH_N=20000 runs the full one.
CRASH_N = int(os.environ.get("STREAM_CRASH_N", "2000"))


def test_garbage_goes_to_the_dlq_and_good_records_are_processed(stream_settings, stream_topics, unique):
    s = stream_settings()
    names = stream_topics(s)
    tenant = unique("g")
    events, expected = sessions(tenant, 3334)  # 3,334 interactions + 6,668 outcomes: 10,002 good records
    bad = garbage(tenant, 1000, SERDE)
    good_iids = {rec["interaction_id"] for name, rec in events if name == "Interaction"}
    with StreamService(s, names) as svc:
        svc.wait_ready(60)
        produce(s, names, events[:5000], raw=[(f, k, v) for f, k, v, _ in bad[:500]])
        produce(s, names, events[5000:], raw=[(f, k, v) for f, k, v, _ in bad[500:]])
        assert wait_until(lambda: svc.stats.inputs >= 11_002 and svc.stats.dead >= 1000, 120), svc.stats
        time.sleep(2 * s.label_window_s + 1)
        assert svc.error is None
        after, _ = sessions(tenant + "-after", 2)  # the same worker still processes new input
        produce(s, names, after)
        assert wait_until(lambda: svc.stats.labels >= len(good_iids) + 2, 30), svc.stats
        assert svc.error is None
    dlq = read_topic(s, names.dlq, "DeadLetter")
    assert (
        len(dlq) == 1000
        and len({(d["origin_topic"], d["origin_partition"], d["origin_offset"]) for d in dlq}) == 1000
    )
    want = Counter(reason for *_, reason in bad)
    assert Counter(d["reason"] for d in dlq) == want
    assert all(d["error"] and d["processor"] == s.stream_app_id and d["origin_offset"] >= 0 for d in dlq)
    assert {bytes(d["payload"]) for d in dlq} == {v for _, _, v, _ in bad}, "raw bytes kept for replay"
    labeled = {lab["interaction_id"] for lab in read_topic(s, names.labels, "Label")}
    assert labeled >= good_iids, f"{len(good_iids - labeled)} good interactions without a label"
    pairs = {p["event_id"] for p in read_topic(s, names.preferences, "PreferencePair")}
    assert pairs >= expected["pairs"]


def _worker(s, suffix: str, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")}
    env.update({"HFLOOP_KAFKA_BOOTSTRAP": s.bootstrap, "HFLOOP_DATA_DIR": str(s.data_dir),
                "HFLOOP_STREAM_APP_ID": s.stream_app_id, "HFLOOP_LABEL_WINDOW_S": str(s.label_window_s),
                "HFLOOP_JOIN_GRACE_S": str(s.join_grace_s), "HFLOOP_STREAM_TICK_S": str(s.stream_tick_s),
                "HFLOOP_STREAM_COMMIT_INTERVAL_S": str(s.stream_commit_interval_s),
                # The killed worker's member expires in 10 s (default 60) so its successor starts sooner.
                "HFLOOP_STREAM_SESSION_TIMEOUT_S": "10", "HFLOOP_STREAM_HEARTBEAT_INTERVAL_S": "1",
                "HFLOOP_STREAM_REBALANCE_TIMEOUT_S": "20"})  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "hfloop.stream", "--topic-suffix", suffix], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip


def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
    stream_settings, stream_topics, unique, tmp_path
):
    s = stream_settings(label_window_s=2.0, join_grace_s=120.0)
    names = stream_topics(s)
    suffix = names.labels.rsplit(".", 1)[1]
    tenant = unique("k")
    events, expected = sessions(tenant, CRASH_N)
    produce(s, names, events)
    log = tmp_path / "worker.log"
    proc = _worker(s, suffix, log)
    try:
        assert wait_until(lambda: len(read_topic(s, names.labels)) >= CRASH_N // 4, 300, every=0.3), (
            log.read_text()[-3000:]
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        before = len(read_topic(s, names.labels))
        proc = _worker(s, suffix, log)

        def complete() -> bool:
            labels = {r["event_id"] for r in read_topic(s, names.labels, "Label")}
            pairs = {r["event_id"] for r in read_topic(s, names.preferences, "PreferencePair")}
            return labels >= expected["labels"] and pairs >= expected["pairs"]

        assert wait_until(complete, 600, every=2), log.read_text()[-3000:]
        time.sleep(3 * s.label_window_s)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    labels = read_topic(s, names.labels, "Label")
    pairs = read_topic(s, names.preferences, "PreferencePair")
    assert before < 2 * CRASH_N, "the kill landed mid-stream"
    pair_ids = {p["event_id"] for p in pairs}
    assert pair_ids == expected["pairs"], "every expected pair, and no pair under a second id"
    by_id = defaultdict(list)
    for r in labels + pairs:
        by_id[r["event_id"]].append({k: v for k, v in r.items() if k != "trigger"})
    assert all(all(c == copies[0] for c in copies) for copies in by_id.values()), (
        "a redelivered id carries the same record"
    )
    final: dict[str, dict] = {}
    for lab in labels:
        if lab["interaction_id"] not in final or lab["version"] > final[lab["interaction_id"]]["version"]:
            final[lab["interaction_id"]] = lab
    assert {lab["event_id"] for lab in final.values()} == expected["labels"], (
        "the final label of every interaction"
    )
    redelivered = sum(len(c) - 1 for c in by_id.values())
    partial = len({lab["event_id"] for lab in labels}) - len(expected["labels"])
    print(
        f"crash run: N={CRASH_N} labels before kill={before} records={len(labels) + len(pairs)} "
        f"redelivered copies={redelivered} early label versions={partial}"
    )
