"""Test helpers: read back what landed on a topic."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hfloop.config import Settings
from hfloop.events.serde import DecodeError, Serde


def end_offsets(settings: Settings, topic: str, timeout: float = 20.0) -> dict[int, int]:
    """High watermarks per partition (retries while a fresh partition still has no leader)."""
    c = Consumer(settings.consumer_config("offsets-probe"))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                md = c.list_topics(topic, timeout=10).topics[topic]
                return {
                    p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions
                }
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        c.close()


def consume_all(settings: Settings, topics: list[str], serde: Serde, expect: int, group: str,
                timeout: float = 30.0, predicate: Any = None) -> list[tuple[str, dict[str, Any]]]:  # fmt: skip
    """Consume from the beginning until ``expect`` matching records arrived (or timeout)."""
    c = Consumer(settings.consumer_config(group))
    c.subscribe(topics)
    out: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                name, rec = serde.decode(msg.value())
            except DecodeError:
                continue  # another test's deliberately bad record on the shared topic
            if predicate is None or predicate(rec):
                out.append((name, rec))
    finally:
        c.close()
    return out
