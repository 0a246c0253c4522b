"""Helpers of the analytics tests (a module of its own: tests are not a package)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from hfloop.analytics import synth
from hfloop.analytics.tables import RECORD_TABLE, TOPIC_TABLE
from hfloop.config import Settings
from hfloop.events.kafka import RecordProducer
from hfloop.events.serde import Serde


def produce_every_kind(settings: Settings, n: int, tenant: str, start: int = 0) -> None:
    """n records of every kind for ``tenant`` (deterministic ids: producing twice is a replay)."""
    producer = RecordProducer(settings, Serde())
    for name in RECORD_TABLE:
        for i in range(start, start + n):
            producer.send(name, synth.record(name, i, tenant))
    producer.flush(120)


def tenant_counts(client: Any, database: str, tenant: str, final: bool = True) -> dict[str, int]:
    """count() per table for one tenant, through FINAL (each event once) or raw."""
    out = {}
    for table in TOPIC_TABLE.values():
        sql = f"SELECT count() FROM {database}.{table}{' FINAL' if final else ''} WHERE tenant_id = %(t)s"
        out[table] = int(client.query(sql, parameters={"t": tenant}).result_rows[0][0])
    return out


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def watermarks(consumer: Consumer, tp: TopicPartition) -> tuple[int, int]:
    """(low, high) of a partition; retried while a just-created topic has no leader yet."""
    for attempt in range(40):
        try:
            return consumer.get_watermark_offsets(tp, timeout=10)  # type: ignore[no-any-return]
        except Exception:
            if attempt == 39:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def start_group_at_end(settings: Settings, group: str) -> None:
    """Commit the current end offsets for ``group``, so a sink in it skips what other tests
    (sharing the session broker and the contract's topic names) produced before."""
    consumer = Consumer(settings.consumer_config(group))
    try:
        offsets = []
        for topic in TOPIC_TABLE:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                _low, high = watermarks(consumer, TopicPartition(topic, p))
                offsets.append(TopicPartition(topic, p, high))
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def group_lag(settings: Settings, group: str) -> int:
    """Records on every topic not yet committed by ``group`` (without joining the group)."""
    consumer = Consumer(settings.consumer_config(group))
    try:
        parts = []
        for topic in TOPIC_TABLE:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            parts += [TopicPartition(topic, p) for p in meta.partitions]
        committed = consumer.committed(parts, timeout=10)
        lag = 0
        for tp in committed:
            _low, high = watermarks(consumer, TopicPartition(tp.topic, tp.partition))
            lag += high - (tp.offset if tp.offset >= 0 else 0)
        return lag
    finally:
        consumer.close()
