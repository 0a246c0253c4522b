"""Windows of preference pairs read from ``hfloop.preferences`` with Ray Data.

A window is a time range of Kafka record timestamps. Its offsets are resolved *once*, up
front, with the same ``offsets_for_times`` semantics ``ray.data.read_kafka`` uses for
datetimes, and then passed to ``read_kafka`` as exact per-partition integers. The run
therefore knows exactly which offsets it trained on (they go into the TrainingRun record),
and :func:`read_offsets` replays the same records later, whatever was produced since.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hfloop.config import Settings
from hfloop.events.topics import PREFERENCES

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> timedelta:
    """'7d', '12h', '30m', '90s', '2w' -> timedelta."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"bad duration {text!r}; use e.g. 7d, 12h, 30m")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


def window_bounds(window: str, end: datetime | None = None) -> tuple[datetime, datetime]:
    """(start, end) of the window of length ``window`` that ends at ``end`` (default now)."""
    end = end or datetime.now(UTC)
    return end - parse_duration(window), end


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:  # naive datetimes are UTC, as in ray.data.read_kafka
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@dataclass
class WindowData:
    """Decoded pairs of a window plus exactly where they came from."""

    start_ms: int
    end_ms: int
    offsets: list[dict[str, Any]]  # PartitionRange records (TrainingRun.offsets)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    undecodable: int = 0  # records that were not PreferencePair (counted, reported by the gate)
    other_tenant: int = 0

    @property
    def records_in_range(self) -> int:
        return sum(r["end_offset"] - r["start_offset"] for r in self.offsets)


def resolve_offsets(
    settings: Settings, start: datetime, end: datetime, topic: str = PREFERENCES
) -> list[dict[str, Any]]:
    """Per-partition [start, end) offsets of the records with timestamps in [start, end).

    The end is clamped to the high watermark seen now, so records produced later never
    leak into this window's replay.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(settings.consumer_config("hfloop-training-offsets"))
    try:
        meta = consumer.list_topics(topic, timeout=30)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            raise ValueError(f"topic {topic} does not exist")
        ranges: list[dict[str, Any]] = []
        for p in sorted(meta.topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            # One lookup per call: librdkafka merges duplicate partitions within one request.
            # offsets_for_times gives -1 when no record is at/after the time: the range runs to the end.
            first, last = (
                _offset_at(consumer, TopicPartition(topic, p, to_ms(t)), high) for t in (start, end)
            )
            first, last = max(first, low), min(last, high)
            ranges.append(
                {"topic": topic, "partition": p, "start_offset": first, "end_offset": max(first, last)}
            )
        return ranges
    finally:
        consumer.close()


def _offset_at(consumer: Any, tp: Any, default: int) -> int:
    found = consumer.offsets_for_times([tp], timeout=30)
    return int(found[0].offset) if found and found[0].offset >= 0 else default


def _decode_batch(batch: dict[str, Any], wanted: frozenset[tuple[str, int]]) -> dict[str, Any]:
    """Ray Data map_batches: Kafka rows -> PreferencePair rows (the record kept as JSON text).

    Rows of partitions outside ``wanted`` (created after the offsets were recorded) are dropped.
    """
    import json

    from hfloop.events.serde import DecodeError, default_serde

    serde = default_serde()
    out: dict[str, list[Any]] = {"record": [], "ok": [], "partition": [], "offset": []}
    for value, topic, partition, offset in zip(
        batch["value"], batch["topic"], batch["partition"], batch["offset"], strict=True
    ):
        if (str(topic), int(partition)) not in wanted:
            continue
        try:
            name, record = serde.decode(bytes(value))
            ok = name == "PreferencePair"
        except DecodeError:
            record, ok = {}, False
        out["record"].append(json.dumps(record) if ok else "")
        out["ok"].append(ok)
        out["partition"].append(int(partition))
        out["offset"].append(int(offset))
    return out


def read_offsets(
    settings: Settings, offsets: list[dict[str, Any]], tenant_id: str | None = None, timeout_ms: int = 30_000
) -> WindowData:
    """Read exactly ``offsets`` (PartitionRange records) with ``ray.data.read_kafka``, decoding in Ray Data.

    Needs a running Ray (``ray.init``). ``timeout_ms`` bounds each partition's read: a
    transactional producer's commit markers take offsets no data record has, so a read
    could otherwise wait forever for the last one.
    """
    import json

    import ray

    window = WindowData(start_ms=0, end_ms=0, offsets=offsets)
    todo = [r for r in offsets if r["end_offset"] > r["start_offset"]]
    if not todo:
        return window
    topics = sorted({r["topic"] for r in todo})
    # Every recorded partition is listed (empty ones as start == end): an unlisted partition
    # would be read from earliest to latest.
    start = {t: {r["partition"]: r["start_offset"] for r in offsets if r["topic"] == t} for t in topics}
    end = {t: {r["partition"]: r["end_offset"] for r in offsets if r["topic"] == t} for t in topics}
    conf = {k: v for k, v in settings.kafka_client_config().items() if k != "bootstrap.servers"}
    conf["isolation.level"] = "read_committed"
    # Small CPU reservations: the reads are I/O-bound and must not wait behind training workers.
    ds = ray.data.read_kafka(
        topics,
        bootstrap_servers=settings.bootstrap,
        start_offset=start,
        end_offset=end,
        consumer_config=conf,
        timeout_ms=timeout_ms,
        num_cpus=0.25,
    )
    wanted = frozenset((r["topic"], r["partition"]) for r in offsets)
    decoded = ds.map_batches(
        _decode_batch,  # type: ignore[arg-type]
        fn_kwargs={"wanted": wanted},
        batch_format="numpy",
        batch_size=4096,
        num_cpus=0.25,
    )
    rows = decoded.take_all()
    for row in sorted(rows, key=lambda r: (r["partition"], r["offset"])):
        if not row["ok"]:
            window.undecodable += 1
            continue
        rec = json.loads(row["record"])
        if tenant_id is not None and rec.get("tenant_id") != tenant_id:
            window.other_tenant += 1
            continue
        window.pairs.append(rec)
    return window


def read_window(
    settings: Settings, start: datetime, end: datetime, tenant_id: str | None = None, topic: str = PREFERENCES
) -> WindowData:
    """Resolve the window's offsets, then read and decode them (see :func:`read_offsets`)."""
    offsets = resolve_offsets(settings, start, end, topic)
    window = read_offsets(settings, offsets, tenant_id)
    window.start_ms, window.end_ms = to_ms(start), to_ms(end)
    return window
