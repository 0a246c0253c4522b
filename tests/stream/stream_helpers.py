"""Helpers of the stream tests: per-test topics on the session broker, producing and reading."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from hfloop.config import Settings
from hfloop.events.serde import Serde
from hfloop.events.topics import TOPICS, key_of
from hfloop.stream.app import TopicNames
from waiting import wait_until  # noqa: F401  (re-exported to this folder's tests)

SERDE = Serde()
CONTRACT = {"interactions": "hfloop.interactions", "feedback": "hfloop.feedback", "outcomes": "hfloop.outcomes",
            "labels": "hfloop.labels", "preferences": "hfloop.preferences", "memory": "hfloop.memory",
            "dlq": "hfloop.dlq"}  # fmt: skip
OUTPUT_RECORD = {
    "labels": "Label",
    "preferences": "PreferencePair",
    "memory": "MemoryUpdate",
    "dlq": "DeadLetter",
}


def create_stream_topics(settings: Settings, names: TopicNames, partitions: int = 3) -> None:
    admin = AdminClient(settings.kafka_client_config())
    new = [NewTopic(getattr(names, f), num_partitions=partitions, replication_factor=1,
                    config=TOPICS[c].config()) for f, c in CONTRACT.items()]  # fmt: skip
    for fut in admin.create_topics(new, operation_timeout=30).values():
        fut.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until every partition has a leader
        md = admin.list_topics(timeout=10).topics
        if all(
            getattr(names, f) in md and len(md[getattr(names, f)].partitions) == partitions for f in CONTRACT
        ):
            return
        time.sleep(0.2)


INPUT_OF = {"Interaction": "interactions", "Feedback": "feedback", "Outcome": "outcomes"}


def produce(settings: Settings, names: TopicNames, events: Iterable[tuple[str, dict[str, Any]]],
            raw: Iterable[tuple[str, bytes | None, bytes]] = ()) -> None:  # fmt: skip
    """Produce (record name, record) pairs to the input topics, and raw (field, key, value) triples."""
    p = Producer(settings.producer_config())
    for n, (name, rec) in enumerate(events):
        topic = getattr(names, INPUT_OF[name])
        p.produce(topic, SERDE.encode(name, rec), key_of(TOPICS[CONTRACT[INPUT_OF[name]]].name, rec))
        if n % 5000 == 4999:
            p.poll(0)
    for field, key, value in raw:
        p.produce(getattr(names, field), value, key)
    assert p.flush(60) == 0


def read_topic(settings: Settings, topic: str, record: str | None = None) -> list[dict[str, Any]]:
    """Every record now in ``topic`` (decoded when ``record`` is given), up to the end offsets."""
    c = Consumer(settings.consumer_config(f"read-{uuid.uuid4().hex[:8]}"))
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions}
        todo = {p for p, e in ends.items() if e > 0}
        c.assign([TopicPartition(topic, p, 0) for p in todo])
        out = []
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            for m in c.consume(10_000, timeout=0.5):
                if m.error():
                    continue
                out.append(SERDE.decode_as(m.value(), record) if record else {"value": m.value()})
                if m.offset() + 1 >= ends[m.partition()]:
                    todo.discard(m.partition())
        assert not todo, f"could not read {topic} to its end"
        return out
    finally:
        c.close()


def read_outputs(settings: Settings, names: TopicNames) -> dict[str, list[dict[str, Any]]]:
    return {f: read_topic(settings, getattr(names, f), r) for f, r in OUTPUT_RECORD.items()}
