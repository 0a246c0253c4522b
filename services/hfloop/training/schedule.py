"""When to train: enough new pairs passed the gate since the last run, or a cron time came.

The decision is a pure function (:func:`decide`) of the scheduler state, the count of new
gated pairs and the clock. :class:`Scheduler` wires it to the broker and a job runner:
``hfloop train schedule`` loops; ``--once`` checks once and exits, which is what the
Kubernetes CronJob (deploy/k8s/) runs inside a RayJob.

State (``<data_dir>/training/schedule-<kind>.json``) holds the end offsets of the last
triggered run, so "new" means records after the offsets that run read, exactly.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hfloop.config import Settings
from hfloop.events.topics import PREFERENCES

log = logging.getLogger(__name__)


@dataclass
class ScheduleConfig:
    kind: str = field(default="dpo", metadata={"help": "Job to trigger: dpo | reward | rlhf."})
    min_new_pairs: int = field(
        default=500, metadata={"help": "Trigger when this many new pairs passed the gate's filters."}
    )
    cron: str | None = field(
        default=None, metadata={"help": "Also trigger at these times (5-field cron, UTC)."}
    )
    interval_s: float = field(default=60.0, metadata={"help": "Seconds between checks in loop mode."})
    tenant_id: str | None = field(
        default=None, metadata={"help": "Count and train only this tenant's pairs."}
    )


@dataclass
class ScheduleState:
    last_offsets: dict[str, int] = field(
        default_factory=dict
    )  # "topic/partition" -> end offset of the last run
    last_run_ms: int | None = None
    last_check_ms: int | None = None
    last_run_id: str | None = None
    last_reason: str | None = None


# --- cron ------------------------------------------------------------------------------------

_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


def _cron_field(spec: str, lo: int, hi: int) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        body, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if body == "*":
            start, end = lo, hi
        elif "-" in body:
            a, b = body.split("-")
            start, end = int(a), int(b)
        else:
            start = end = int(body)
            if step_s:
                end = hi
        if not (lo <= start <= hi and lo <= end <= hi) or step < 1:
            raise ValueError(f"cron field {spec!r} out of range {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return values


def cron_matches(expr: str, when: datetime) -> bool:
    """Standard 5-field cron (minute hour day-of-month month day-of-week, 0 = Sunday) in UTC.

    As in cron, when both day fields are restricted, either one matching is enough.
    """
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"cron expression needs 5 fields: {expr!r}")
    sets = [
        _cron_field(p, lo, hi if i != 4 else 7)
        for i, (p, (lo, hi)) in enumerate(zip(parts, _CRON_RANGES, strict=True))
    ]
    minute, hour, dom, month, dow = sets
    dow = {d % 7 for d in dow}
    cron_dow = (when.weekday() + 1) % 7
    day_ok = (
        (when.day in dom or cron_dow in dow)
        if parts[2] != "*" and parts[4] != "*"
        else (when.day in dom and cron_dow in dow)
    )
    return when.minute in minute and when.hour in hour and when.month in month and day_ok


def cron_due(expr: str, last_ms: int | None, now_ms: int) -> bool:
    """Did a cron time fall in (last_ms, now_ms]? The first check (no last) only looks at this minute."""
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC).replace(second=0, microsecond=0)
    start = (
        now
        if last_ms is None
        else datetime.fromtimestamp(last_ms / 1000, tz=UTC).replace(second=0, microsecond=0)
    )
    t = start + timedelta(minutes=1) if last_ms is not None else start
    steps = 0
    while t <= now and steps < 60 * 24 * 8:  # a scheduler down for over a week fires once, not 10k times
        if cron_matches(expr, t):
            return True
        t += timedelta(minutes=1)
        steps += 1
    return False


def decide(state: ScheduleState, new_gated_pairs: int, now_ms: int, cfg: ScheduleConfig) -> tuple[bool, str]:
    """(trigger?, why). Enough new gated pairs, or a cron time since the last check."""
    if new_gated_pairs >= cfg.min_new_pairs:
        return True, f"{new_gated_pairs} new gated pairs >= min_new_pairs {cfg.min_new_pairs}"
    if cfg.cron and cron_due(cfg.cron, state.last_check_ms, now_ms):
        return True, f"cron {cfg.cron!r} is due ({new_gated_pairs} new gated pairs)"
    return False, f"{new_gated_pairs} new gated pairs < {cfg.min_new_pairs}; no cron time due"


# --- wiring ----------------------------------------------------------------------------------


def state_path(settings: Settings, kind: str) -> Path:
    return settings.data_dir / "training" / f"schedule-{kind}.json"


def load_state(settings: Settings, kind: str) -> ScheduleState:
    path = state_path(settings, kind)
    return ScheduleState(**json.loads(path.read_text())) if path.exists() else ScheduleState()


def save_state(settings: Settings, kind: str, state: ScheduleState) -> None:
    path = state_path(settings, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".schedule-")
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(state), fh)
    os.replace(tmp, path)


def new_offsets(settings: Settings, state: ScheduleState, topic: str = PREFERENCES) -> list[dict[str, Any]]:
    """PartitionRanges from the last run's end offsets (or the beginning) to the high watermarks."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(settings.consumer_config("hfloop-training-schedule"))
    try:
        meta = consumer.list_topics(topic, timeout=30)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            return []
        out = []
        for p in sorted(meta.topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            start = max(low, state.last_offsets.get(f"{topic}/{p}", low))
            out.append(
                {"topic": topic, "partition": p, "start_offset": start, "end_offset": max(start, high)}
            )
        return out
    finally:
        consumer.close()


def read_plain(
    settings: Settings, ranges: list[dict[str, Any]], tenant_id: str | None
) -> list[dict[str, Any]]:
    """Decode the pairs in ``ranges`` with a plain consumer (the scheduler needs no Ray)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from hfloop.events.serde import DecodeError, default_serde

    todo = [r for r in ranges if r["end_offset"] > r["start_offset"]]
    if not todo:
        return []
    serde = default_serde()
    consumer = Consumer(
        settings.consumer_config("hfloop-training-schedule", **{"enable.partition.eof": True})
    )
    pairs: list[dict[str, Any]] = []
    try:
        consumer.assign([TopicPartition(r["topic"], r["partition"], r["start_offset"]) for r in todo])
        ends = {(r["topic"], r["partition"]): r["end_offset"] for r in todo}
        deadline = time.time() + 120
        while ends and time.time() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            key = (msg.topic(), msg.partition())
            if msg.error():
                # End of partition: commit markers may sit where the last data offset was expected.
                if msg.error().code() == KafkaError._PARTITION_EOF:  # type: ignore[union-attr]
                    ends.pop(key, None)
                continue
            end = ends.get(key)
            if end is None or msg.offset() >= end:
                ends.pop(key, None)
                continue
            if msg.offset() >= end - 1:
                ends.pop(key)
            try:
                name, rec = serde.decode(msg.value())
            except DecodeError:
                continue
            if name == "PreferencePair" and (tenant_id is None or rec.get("tenant_id") == tenant_id):
                pairs.append(rec)
    finally:
        consumer.close()
    return pairs


def count_gated(pairs: list[dict[str, Any]], gate_cfg: Any) -> int:
    """Pairs that survive the gate's filters (duplicates, contradictions); thresholds are the job's business."""
    from hfloop.training.gate import drop_exact_duplicates, drop_near_duplicates, reconcile_contradictions

    kept, _ = drop_exact_duplicates(pairs)
    kept, _ = drop_near_duplicates(kept, gate_cfg.near_dup_jaccard)
    kept, _ = reconcile_contradictions(kept, gate_cfg.reconcile_min_share)
    return len(kept)


class Scheduler:
    """Checks, decides, runs the job (``run_job(window_end_ms) -> record``), remembers what it read."""

    def __init__(
        self, settings: Settings, cfg: ScheduleConfig, run_job: Callable[[], dict[str, Any]], gate_cfg: Any
    ) -> None:
        self.settings, self.cfg, self.run_job, self.gate_cfg = settings, cfg, run_job, gate_cfg

    def check_once(self, now_ms: int | None = None) -> dict[str, Any]:
        now_ms = now_ms or int(time.time() * 1000)
        state = load_state(self.settings, self.cfg.kind)
        ranges = new_offsets(self.settings, state)
        new = count_gated(read_plain(self.settings, ranges, self.cfg.tenant_id), self.gate_cfg)
        go, reason = decide(state, new, now_ms, self.cfg)
        result: dict[str, Any] = {"triggered": go, "reason": reason, "new_gated_pairs": new}
        state.last_check_ms = now_ms
        if go:
            log.info("training triggered: %s", reason)
            record = self.run_job()
            result["record"] = record
            state.last_run_ms, state.last_run_id, state.last_reason = now_ms, record["run_id"], reason
            # A failed run did not consume its window, so its pairs trigger the next check;
            # any other outcome (refused included) moves the mark past what it read.
            if record["status"] != "FAILED":
                for o in record["offsets"]:
                    state.last_offsets[f"{o['topic']}/{o['partition']}"] = o["end_offset"]
        save_state(self.settings, self.cfg.kind, state)
        return result

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.check_once()
            except Exception:  # a failed check (broker away) must not end the scheduler
                log.exception("schedule check failed")
            stop.wait(self.cfg.interval_s)
